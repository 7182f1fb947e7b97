"""The machinery around the study, out of the science's way: result files with provenance
(``results``), the report and the README table (``report``), the headless run of the notebooks
(``pipeline``), the work a notebook's parameters imply and its time estimate (``plan``; the paper
profile's GPU hours, ``paper_plan``), the check that a paper run has its inputs (``paper_inputs``),
real-format stand-ins of the paper checkpoints and data sets (``standins``), the course on
nbgrader (``course``), and the study as a static HTML book of the executed notebooks (``book``)."""
