"""The study as a book: a static HTML site a reader opens in a browser, offline.

    python -m vlmid.harness.book                 # -> build/book/html/index.html (what `bash run_all.sh --book` runs)
    python -m vlmid.harness.book --out DIR       # -> DIR/html/index.html, the staged sources in DIR/src

Nothing is executed. The pages are the README's intro, its table of notebooks and its results table (the
front page), one page per executed notebook of ``results/executed/`` as it ran, ``results/REPORT.md`` and
``docs/*.md``, built by Sphinx with myst-nb (``nb_execution_mode = "off"``) and the book theme. The Sphinx
configuration is ``book/conf.py``; this module stages the sources beside a copy of it, at their repository
paths (``docs/methods.md`` stays ``docs/methods.md``; an executed notebook becomes ``notebooks/<name>.ipynb``),
and rewrites their links so that they resolve inside the site (``rewrite``).

A notebook saves its figures with ``ResultWriter.figure`` under the Agg backend, so its executed copy holds
no image, only the path it wrote. Below each cell that saved a figure, the book shows that PNG from
``results/<notebook>/``, after checking its SHA-256 against the run's ``provenance.json``: the figure as
that run drew it.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import posixpath
import re
import shutil
import sys
import time
from pathlib import Path

from ..paths import REPO_ROOT
from .report import README_END, README_START
from .results import git_commit

CONF_DIR = REPO_ROOT / "book"                       # conf.py and whatever else stays fixed
DEFAULT_OUT = REPO_ROOT / "build" / "book"          # git-ignored
# Debian's MathJax 2 (libjs-mathjax; run_all.sh installs it as root): the part that typesets TeX as HTML
MATHJAX = Path("/usr/share/javascript/mathjax")
MATHJAX_PARTS = ("MathJax.js", "config/TeX-AMS_CHTML.js", "extensions", "jax/input/TeX", "jax/element",
                 "jax/output/CommonHTML", "fonts/HTML-CSS/TeX/woff", "localization/en")
NOTEBOOK_TABLE = "## What each notebook answers"    # the README section whose table lists the notebooks

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)((?:\s+\"[^\"]*\")?)\)")
_CODE = re.compile(r"(`+)(.+?)\1(?: §(\d+))?")            # a code span, and the section it cites
_CITATION = re.compile(r"(?<![\w/.`])(docs/\w+\.md) §(\d+)")
_SECTION = re.compile(r"^## (\d+)\.\s+(.+?)\s*$", re.M)


# ---- what the site holds ----------------------------------------------------------------------
def executed_notebooks(root: Path = REPO_ROOT) -> list[Path]:
    """The executed notebooks the book shows, in order: ``results/executed/NN_*.ipynb``."""
    return sorted((root / "results" / "executed").glob("[0-9][0-9]_*.ipynb"))


def site_pages(root: Path = REPO_ROOT) -> dict[str, str]:
    """Repository path -> site path of every page: a link to the key becomes a link to the page."""
    pages = {"README.md": "index.md"}
    if (root / "results" / "REPORT.md").exists():
        pages["results/REPORT.md"] = "results/REPORT.md"
    for doc in sorted((root / "docs").glob("*.md")):
        pages[f"docs/{doc.name}"] = f"docs/{doc.name}"
    for nb in executed_notebooks(root):
        pages[f"notebooks/{nb.name}"] = pages[f"results/executed/{nb.name}"] = f"notebooks/{nb.name}"
    return pages


def doc_sections(root: Path = REPO_ROOT) -> dict[str, dict[str, str]]:
    """``{"docs/methods.md": {"2": "2-id-guided-vlm-pruning", ...}}``: the anchor of each numbered section
    ("## N. Title"), as myst names it (its GitHub-style slug), for citations such as ``docs/methods.md §2``."""
    from myst_parser.slugs import github_slugify

    return {f"docs/{doc.name}": {n: github_slugify(f"{n}. {title}".replace("`", ""))
                                 for n, title in _SECTION.findall(doc.read_text(encoding="utf-8"))}
            for doc in sorted((root / "docs").glob("*.md"))}


# ---- links -----------------------------------------------------------------------------------
def rewrite(text: str, source: str, site: str, pages: dict[str, str], sections: dict[str, dict[str, str]],
            root: Path = REPO_ROOT) -> tuple[str, set[str]]:
    """Rewrite the markdown ``text`` of the repository file ``source``, staged at ``site``, so that every
    link resolves inside the site; return it and the repository files (not pages) it links to, which the
    site must hold at their repository paths.

    - ``[t](docs/x.md#a)``, ``[t](../notebooks/02_x.ipynb)``: a link to a page goes to that page;
    - ``[t](results/02_x/a.csv)``, ``![f](02_x/f.png)``: a link to another file of the repository is kept
      (relative to ``site``) and the file is copied (Sphinx then serves it as a download or an image);
    - `` `docs/methods.md` §2 ``, ``docs/methods.md §2``: a citation of a section links to its anchor;
    - `` `docs/x.md` ``, `` `results/REPORT.md` ``, `` `02_pruning_blip` ``: a page named in code links to it.

    Code blocks are left alone, and so are links with a scheme (``https:``) or to an anchor of the same page.
    A link to a file that is not in the repository raises ``ValueError``, naming it."""
    files: set[str] = set()
    missing: list[str] = []
    here = posixpath.dirname(site)
    stems = {posixpath.splitext(posixpath.basename(p))[0]: p for p in pages if p.startswith("notebooks/")}

    def url(target: str, anchor: str = "") -> str:
        return posixpath.relpath(target, here or ".") + (f"#{anchor}" if anchor else "")

    def page_link(name: str, section: str | None) -> str | None:
        key = stems.get(name, name)
        if key not in pages or key == "README.md":     # the front page is not the whole README
            return None
        anchor = ""
        if section is not None:
            anchor = sections.get(key, {}).get(section, "")
            if not anchor:
                missing.append(f"{key} §{section} (no such section)")
        return url(pages[key], anchor)

    def link(m: re.Match) -> str:
        bang, label, target, title = m.groups()
        if re.match(r"[A-Za-z][\w+.-]*:", target) or target.startswith(("#", "/")):
            return m.group(0)
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        if resolved.startswith("../"):
            missing.append(f"{target} (outside the repository)")
            return m.group(0)
        if (root / resolved).is_dir() and f"{resolved}/README.md" in pages:
            resolved = f"{resolved}/README.md"
        if resolved in pages:
            new = url(pages[resolved], anchor)
        elif (root / resolved).is_file():
            files.add(resolved)
            new = url(resolved, anchor)
        else:
            missing.append(target)
            return m.group(0)
        return f"{bang}[{label}]({new}{title})"

    kept: list[str] = []                                # the parts no later rule may touch

    def keep(s: str) -> str:
        kept.append(s)
        return f"\x00{len(kept) - 1}\x00"

    def code(m: re.Match) -> str:
        ticks, name, section = m.groups()
        span = f"{ticks}{name}{ticks}"
        name = name[len("notebooks/"):-len(".ipynb")] if re.fullmatch(r"notebooks/\w+\.ipynb", name) else name
        target = page_link(name, section)
        if target is None:                              # not a page: the code stays code, " §N" plain text
            return keep(span) + m.group(0)[len(span):]
        return keep(f"[{m.group(0)}]({target})")

    def citation(m: re.Match) -> str:
        return keep(f"[{m.group(0)}]({page_link(m.group(1), m.group(2))})")

    text = _FENCE.sub(lambda m: keep(m.group(0)), text)
    text = _LINK.sub(lambda m: keep(link(m)), text)
    text = _CODE.sub(code, text)
    text = _CITATION.sub(citation, text)
    while "\x00" in text:
        text = re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)
    if missing:
        raise ValueError(f"{source}: links to what the repository does not hold: {', '.join(missing)}")
    return text, files


# ---- the pages ---------------------------------------------------------------------------------
def _section(text: str, heading_or_marker: str) -> str:
    """The README section (from its '## ' heading to the next) that has this heading or holds this marker."""
    parts = re.split(r"(?m)^(?=## )", text)
    found = [p for p in parts[1:] if heading_or_marker in p]
    if not found:
        raise ValueError(f"the README has no section {heading_or_marker!r}")
    return found[0].rstrip() + "\n"


def front_page(readme: str, notebook_pages: list[str], commit: str) -> str:
    """index.md: the README's intro, its table of notebooks and its results table, then the hidden
    tables of contents that make the sidebar (notebooks, the full report, the docs)."""
    intro = re.split(r"(?m)^## ", readme, maxsplit=1)[0].rstrip()
    results = _section(readme, README_START)
    if README_END not in results:
        raise ValueError(f"the README's results section has no {README_END}")
    about = ("This book shows the notebooks as they ran for the committed results: each notebook page is its "
             "executed copy in `results/executed/`, with the figures that run saved in `results/<notebook>/`; "
             f"nothing was executed to build it (`bash run_all.sh --book` at commit `{commit[:12]}`"
             + (", with uncommitted changes" if commit.endswith("-dirty") else "") + ").")

    def toc(caption: str, entries: list[str]) -> str:
        return "```{toctree}\n:hidden:\n:maxdepth: 1\n:caption: " + caption + "\n\n" + "\n".join(entries) + "\n```\n"

    table = _section(readme, NOTEBOOK_TABLE) if NOTEBOOK_TABLE in readme else ""
    return "\n\n".join(filter(None, [
        intro, about, table.rstrip(), results.rstrip(),
        toc("Notebooks", [p.removesuffix(".ipynb") for p in notebook_pages]),
        toc("Results", ["results/REPORT"]),
        toc("Documentation", ["docs/README", "docs/methods", "docs/sources", "docs/glossary"]),
    ])) + "\n"


def _source(cell: dict) -> str:
    """A notebook cell's source as one string (nbformat's JSON may hold it as a list of lines)."""
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def notebook_with_figures(nb: dict, figures_dir: Path) -> tuple[dict, list[str]]:
    """The executed notebook with, after the outputs of each cell that saved a figure
    (``out.figure(fig, "x.png")``, or a helper it calls with the file name), that PNG as an image output;
    and the PNGs of ``figures_dir`` no cell names (they go at the end). Each PNG's SHA-256 must equal the
    one its run recorded in ``provenance.json``."""
    pngs = {p.name: p for p in sorted(figures_dir.glob("*.png"))}
    recorded = {}
    if (figures_dir / "provenance.json").exists():
        recorded = json.loads((figures_dir / "provenance.json").read_text())["files"]
    changed = [n for n, p in pngs.items() if n in recorded and recorded[n]["sha256"] != _sha256(p)]
    if changed:
        raise ValueError(f"{figures_dir}: {', '.join(changed)} differ from what the run recorded in provenance.json")

    def image(name: str) -> dict:
        return {"output_type": "display_data", "metadata": {},
                "data": {"image/png": base64.b64encode(pngs[name].read_bytes()).decode("ascii"),
                         "text/plain": [f"<figure saved by this cell: results/{figures_dir.name}/{name}>"]}}

    placed: set[str] = set()
    for cell in nb["cells"]:
        src = _source(cell)
        if cell["cell_type"] != "code" or ".figure(" not in src:
            continue
        names = [n for n in dict.fromkeys(re.findall(r"[\"']([^\"'\s]+\.png)[\"']", src)) if n in pngs and n not in placed]
        cell["outputs"] = cell.get("outputs", []) + [image(n) for n in names]
        placed.update(names)
    return nb, [n for n in pngs if n not in placed]


def stage(src: Path, root: Path = REPO_ROOT) -> dict[str, int]:
    """Write the book's sources into ``src`` (emptied first); return what it holds, counted."""
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(root / CONF_DIR.name, src, ignore=shutil.ignore_patterns("__pycache__", "_build"))
    pages, sections = site_pages(root), doc_sections(root)
    files: set[str] = set()

    def write_md(repo_path: str, text: str) -> None:
        new, linked = rewrite(text, repo_path, pages[repo_path], pages, sections, root)
        files.update(linked)
        out = src / pages[repo_path]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(new, encoding="utf-8")

    notebook_pages = [pages[f"notebooks/{nb.name}"] for nb in executed_notebooks(root)]
    write_md("README.md", front_page((root / "README.md").read_text(encoding="utf-8"), notebook_pages, git_commit()))
    for repo_path in pages:
        if repo_path.endswith(".md") and repo_path != "README.md":
            write_md(repo_path, (root / repo_path).read_text(encoding="utf-8"))

    figures = 0
    for path in executed_notebooks(root):
        nb = json.loads(path.read_text(encoding="utf-8"))
        nb, unplaced = notebook_with_figures(nb, root / "results" / path.stem)
        for name in unplaced:                                   # a figure no cell names: shown at the end
            cell = {"cell_type": "markdown", "metadata": {}, "source": f"![{name}](../results/{path.stem}/{name})\n"}
            if nb.get("nbformat_minor", 0) >= 5:                # cells carry an id from nbformat 4.5 on
                cell["id"] = f"book-figure-{len(nb['cells'])}"
            nb["cells"].append(cell)
            files.add(f"results/{path.stem}/{name}")
        figures += sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", [])) + len(unplaced)
        repo_path = f"notebooks/{path.name}"
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                cell["source"], linked = rewrite(_source(cell), repo_path, pages[repo_path], pages, sections, root)
                files.update(linked)
        out = src / pages[repo_path]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    for f in sorted(files):
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, src / f)
    mathjax = (MATHJAX / "MathJax.js").exists()
    (src / "_static" / "mathjax").mkdir(parents=True, exist_ok=True)
    if mathjax:
        for part in MATHJAX_PARTS:
            source, dest = MATHJAX / part, src / "_static" / "mathjax" / part
            dest.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, dest)
    else:   # conf.py's mathjax_path still finds a script: one that says why the formulas are TeX source
        message = f"no MathJax at {MATHJAX} when the book was built: formulas show as TeX source. Install " \
                  "Debian's libjs-mathjax (bash run_all.sh does, as root) and build again."
        (src / "_static" / "mathjax" / "MathJax.js").write_text(f"console.warn({json.dumps(message)});\n")
        print(f"vlmid.harness.book: {message}", file=sys.stderr)
    return {"pages": len(set(pages.values())), "notebooks": len(notebook_pages), "figures": figures,
            "files": len(files), "mathjax": int(mathjax)}


def build(out: Path = DEFAULT_OUT, root: Path = REPO_ROOT) -> dict:
    """Stage the sources into ``out/src`` and build the site into ``out/html`` with every Sphinx warning
    an error (a broken cross-reference, a missing image or anchor fails the build); return what was built,
    its warnings (none, or it raised) and the seconds it took."""
    from sphinx.cmd.build import build_main

    t0 = time.perf_counter()
    out = Path(out)
    src, html, doctrees, warnings = out / "src", out / "html", out / "doctrees", out / "warnings.txt"
    for d in (html, doctrees):
        if d.exists():
            shutil.rmtree(d)
    counts = stage(src, root)
    rc = build_main(["-b", "html", "-W", "--keep-going", "-q", "-j", "1", "-w", str(warnings),
                     "-d", str(doctrees), str(src), str(html)])
    logged = [w for w in warnings.read_text(encoding="utf-8").splitlines() if w.strip()] if warnings.exists() else []
    if rc != 0:
        raise RuntimeError(f"sphinx-build failed (exit {rc}) with {len(logged)} warning(s), each an error:\n"
                           + "\n".join(logged))
    return {**counts, "index": html / "index.html", "warnings": logged, "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmid.harness.book", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT),
                    help="where to build: DIR/html is the site, DIR/src its staged sources (default: build/book)")
    args = ap.parse_args(argv)
    try:
        built = build(Path(args.out))
    except (RuntimeError, ValueError) as exc:
        print(f"vlmid.harness.book: {exc}", file=sys.stderr)
        return 1
    index = built["index"]
    print(f">>> the book: {built['pages']} pages ({built['notebooks']} notebooks, {built['figures']} figures), "
          f"no warning, built in {built['seconds']:.0f} s\n"
          f"    open {index}\n    or serve it: python -m http.server -d {index.parent} (then http://localhost:8000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
