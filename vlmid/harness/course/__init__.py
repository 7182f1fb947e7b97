"""Course tooling, apart from the science: student handouts of the notebooks and their autograder.

- ``handouts``  -- strip the ``### BEGIN SOLUTION`` blocks and hidden tests (``python -m vlmid.harness.course.handouts``)
- ``autograde`` -- run a student's notebook with the hidden tests put back (``python -m vlmid.harness.course.autograde``)
"""
