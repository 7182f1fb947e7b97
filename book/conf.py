"""Sphinx configuration of the study's book.

``python -m vlmid.harness.book`` (or ``bash run_all.sh --book``) stages the pages beside a copy of this
file (the README's intro and results table as ``index.md``, ``docs/*.md``, ``results/REPORT.md`` and the
executed notebooks of ``results/executed/``), then builds them here. Nothing is executed: a notebook page
shows the committed executed copy as it ran.
"""
project = "vlmid"
author = "the vlmid authors"
html_title = "vlmid"                    # the front page's own title is the README's

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# ---- notebooks: shown as committed, never run ---------------------------------------------------
nb_execution_mode = "off"
nb_merge_streams = True                 # one block per stream; a progress bar's '\r' frames collapse to its last
nb_render_markdown_format = "gfm"       # claims.show() prints markdown tables
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3                # docs/methods.md#2-id-guided-vlm-pruning, as on a code host

# ---- math, offline: Debian's MathJax 2 (libjs-mathjax), copied into _static/mathjax by the staging ----
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS_CHTML"
myst_update_mathjax = False             # myst would write MathJax 4 options; MathJax 2 is configured here
mathjax2_config = {"tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                               "processEscapes": True, "processEnvironments": False}}

# ---- the theme, with nothing that needs the network ---------------------------------------------
html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": True,        # the page's source: the executed notebook or the markdown
    "use_fullscreen_button": False,
}
html_context = {"default_mode": "auto"}   # the reader's light or dark preference (unset, the theme logs an error)
html_last_updated_fmt = None
