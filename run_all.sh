#!/usr/bin/env bash
# vlmid's main job: set up what is needed, then run every notebook headless with papermill.
#
#   bash run_all.sh                 all notebooks on every shipped model build, tiny profile (offline, checkpoints/)
#   bash run_all.sh --quick         all notebooks on the first shipped build only (what CI runs)
#   bash run_all.sh --rebuild-models  train the tiny models from nothing first, then run on them
#   bash run_all.sh --tests         set up, then run the test suite
#   bash run_all.sh --book          set up, then build the study as a static HTML book (runs no notebook)
#   bash run_all.sh --help          every option
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  cat <<'TXT'
Usage: bash run_all.sh [--profile tiny|paper] [--builds N,M,...|--seed N|--quick] [--only NN] [--smoke]
                       [--results DIR] [--resume] [--rebuild-models] [--unpinned]
       bash run_all.sh --tests [pytest arguments...]
       bash run_all.sh --setup-only [--unpinned]
       bash run_all.sh --book [--out DIR]

Runs notebooks/NN_*.ipynb in order with papermill (kernel python3) on each model build: 00-05 on
the first build (executed copies in results/executed/, each notebook's tables, figures and
metrics.json in results/<notebook>/), 01-05 on every further build (results/builds/seed<N>/), then
06, which pools the builds and decides every verdict across them. Wall times with provenance go to
results/manifest.json. Stops at the first failing notebook.

  --profile tiny|paper  tiny (default): small BLIP/CLIP trained by this repository on Fashion-MNIST
                        scenes, offline: the shipped checkpoints/tiny-seed<N>/, whose SHA-256 are
                        checked before any notebook runs (a seed that ships none is trained first,
                        announced).
                        paper: the real checkpoints and datasets from a local folder or the HF cache
                        (see README "The paper profile").
  --builds N,M,...      the model builds to run on, by seed (default, tiny profile: every shipped build,
                        checkpoints/tiny-seed<N>/; otherwise 0)
  --quick               the first shipped build only: every notebook once, its verdicts decided on one
                        model, at smaller sizes (each notebook gets quick=True: mostly the further
                        builds' sizes, without notebook 06's ten times longer schedule; what CI runs)
  --seed N              one build: the same as --builds N (the seed every notebook gets)
  --only NN             run one notebook by its number, e.g. --only 01
  --smoke               tiny sizes, well under a minute per notebook (what the tests use)
  --results DIR         write results somewhere else than results/
  --resume              continue an interrupted run: skip the notebooks already complete for this code (this
                        commit, or an earlier one that differs only in results, docs or tests), profile,
                        seed and parameters, and run the rest from the first one that is not.
                        (A notebook's results folder and executed copy are replaced only when it
                        completes, so a killed run leaves each of them complete and new or as before.)
  --rebuild-models      train both tiny models from nothing for --seed (it prints how long the shipped build took on 2 cores
                        with AVX512 and bf16; about twice as long without bf16)
                        into data/models/, then run the notebooks on them instead of the shipped
                        ones (VLMID_MODEL_SOURCE=built). A rebuild on another CPU (AVX2 vs AVX512)
                        gives slightly different models, so its numbers differ slightly from the
                        committed ones.
  --unpinned            install the newest versions pyproject.toml allows, not constraints.txt's
                        exact ones (also: VLMID_UNPINNED=1)
  --cuda                on a GPU machine: install the CUDA build of torch 2.13.0 and torchvision 0.28.0
                        from PyTorch's wheel index (VLMID_TORCH_INDEX, default .../whl/cu128) instead of
                        the CPU build (also: VLMID_TORCH=cuda); the notebooks' device="auto" then uses it
  --tests               set up, then run pytest (extra arguments go to pytest)
  --book                set up, then build the study as a static HTML site a browser opens offline:
                        build/book/html/index.html (--out DIR: DIR/html). The front page is the README's
                        intro and results table; one page per executed notebook in results/executed/, as it
                        ran (nothing is re-executed), the report and docs/. Sphinx warnings fail it.
  --setup-only          create .venv and install everything, run nothing
  --help                this text

Set-up (skipped when already done): a .venv with torch==2.13.0 (CPU wheel) installed first,
then this package and its dependencies at the versions pinned in constraints.txt; Debian's
dataset-fashion-mnist, chromium and chromium-driver (the book's browser test) and libjs-mathjax (the
book's formulas, offline) when running as root. A changed pyproject.toml or constraints.txt installs again.
VLMID_MODEL_SOURCE=built uses the models in data/models/ (trained first if missing, announced)
instead of the shipped ones; --rebuild-models sets it after training them anew.
TXT
}

profile=tiny; seed=""; builds=""; quick=0; only=""; smoke=0; results=""; mode=run; pytest_args=(); book_args=(); rebuild=0; resume=0
case "${VLMID_TORCH:-cpu}" in cpu|"") torch_build=cpu ;; cuda) torch_build=cuda ;;
  *) echo "run_all.sh: VLMID_TORCH='$VLMID_TORCH': use 'cpu' (default) or 'cuda'" >&2; exit 2 ;; esac
case "${VLMID_UNPINNED:-0}" in 0|"") unpinned=0 ;; *) unpinned=1 ;; esac
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --profile) [ $# -ge 2 ] || { echo "run_all.sh: --profile needs a value (tiny or paper)" >&2; exit 2; }; profile="$2"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --seed) [ $# -ge 2 ] || { echo "run_all.sh: --seed needs a whole number" >&2; exit 2; }; seed="$2"; shift 2 ;;
    --seed=*) seed="${1#*=}"; shift ;;
    --builds) [ $# -ge 2 ] || { echo "run_all.sh: --builds needs model seeds such as 0,1,2" >&2; exit 2; }; builds="$2"; shift 2 ;;
    --builds=*) builds="${1#*=}"; shift ;;
    --quick) quick=1; shift ;;
    --only) [ $# -ge 2 ] || { echo "run_all.sh: --only needs a notebook number such as 01" >&2; exit 2; }; only="$2"; shift 2 ;;
    --only=*) only="${1#*=}"; shift ;;
    --smoke) smoke=1; shift ;;
    --results) [ $# -ge 2 ] || { echo "run_all.sh: --results needs a folder" >&2; exit 2; }; results="$2"; shift 2 ;;
    --results=*) results="${1#*=}"; shift ;;
    --rebuild-models) rebuild=1; shift ;;
    --resume) resume=1; shift ;;
    --unpinned) unpinned=1; shift ;;
    --cuda) torch_build=cuda; shift ;;
    --tests) mode=tests; shift; pytest_args=("$@"); break ;;
    --setup-only) mode=setup; shift ;;
    --book) mode=book; shift; book_args=("$@"); break ;;
    *) echo "run_all.sh: unknown option '$1' (see: bash run_all.sh --help)" >&2; exit 2 ;;
  esac
done

# ---- check every argument before touching anything -------------------------------------
case "$profile" in
  tiny|paper) ;;
  *) echo "run_all.sh: unknown profile '$profile': use --profile tiny (offline, default) or --profile paper" >&2; exit 2 ;;
esac
[ -z "$seed" ] || [[ "$seed" =~ ^[0-9]+$ ]] || { echo "run_all.sh: --seed must be a whole number, not '$seed'" >&2; exit 2; }
[ -z "$builds" ] || [[ "$builds" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "run_all.sh: --builds takes model seeds separated by commas, such as 0,1,2, not '$builds'" >&2; exit 2; }
if [ $(( (${#seed} > 0) + (${#builds} > 0) + quick )) -gt 1 ]; then
  echo "run_all.sh: give one of --builds, --seed and --quick (--seed N is --builds N; --quick the first shipped build)" >&2; exit 2
fi
if [ -n "$only" ]; then
  [[ "$only" =~ ^[0-9]{1,2}$ ]] || { echo "run_all.sh: --only takes a notebook number such as 01, not '$only'" >&2; exit 2; }
  num=$(printf '%02d' "$((10#$only))")
  if ! ls notebooks/"${num}"_*.ipynb >/dev/null 2>&1; then
    echo "run_all.sh: no notebook numbered $only; there are: $(cd notebooks && ls [0-9][0-9]_*.ipynb | cut -c1-2 | tr '\n' ' ')" >&2
    exit 2
  fi
  only="$num"
fi
if [ "$rebuild" = 1 ]; then
  [ -z "$builds" ] || [[ "$builds" =~ ^[0-9]+$ ]] || { echo "run_all.sh: --rebuild-models trains one build: give --seed N, not several --builds" >&2; exit 2; }
  [ "$mode" = run ] || { echo "run_all.sh: --rebuild-models trains the models and runs the notebooks; it does not go with --tests, --setup-only or --book" >&2; exit 2; }
  [ "$profile" = tiny ] || { echo "run_all.sh: --rebuild-models is for the tiny profile (the paper profile trains nothing)" >&2; exit 2; }
  [ "$smoke" = 0 ] || { echo "run_all.sh: --rebuild-models trains the real tiny models; --smoke models are always built anyway" >&2; exit 2; }
fi
case "${VLMID_MODEL_SOURCE:-shipped}" in
  shipped|built) ;;
  *) echo "run_all.sh: VLMID_MODEL_SOURCE='$VLMID_MODEL_SOURCE': use 'shipped' (default) or 'built'" >&2; exit 2 ;;
esac
[ -f constraints.txt ] || [ "$unpinned" = 1 ] || { echo "run_all.sh: constraints.txt is missing: restore it (git checkout -- constraints.txt) or pass --unpinned" >&2; exit 2; }

# ---- set-up (idempotent) ------------------------------------------------------------------
VENV=.venv
PY="$VENV/bin/python"
stamp="$VENV/.vlmid-installed"
# the stamp: what was installed (pyproject.toml, and constraints.txt unless --unpinned); a change installs again
if [ "$unpinned" = 1 ]; then
  pin=(); want="$( { cat pyproject.toml; echo unpinned; } | sha256sum | cut -c1-16)"
else
  pin=(-c constraints.txt); want="$( { cat pyproject.toml; cat constraints.txt; } | sha256sum | cut -c1-16)"
fi
want="$want-$torch_build"
if [ "$torch_build" = cpu ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo ">>> a GPU is visible (nvidia-smi), but the CPU build of torch is installed: pass --cuda (or VLMID_TORCH=cuda)"
  echo "    to install the CUDA build, so that the notebooks' device=\"auto\" runs on the GPU"
fi

if [ ! -x "$PY" ]; then
  echo ">>> creating $VENV"
  python3 -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  [ "$unpinned" = 1 ] && echo ">>> --unpinned: newest versions pyproject.toml allows, not constraints.txt's"
  if [ "$torch_build" = cuda ]; then
    index="${VLMID_TORCH_INDEX:-https://download.pytorch.org/whl/cu128}"
    echo ">>> installing torch==2.13.0 and torchvision==0.28.0 (CUDA build, from $index) first, then vlmid"
    "$PY" -m pip install -qq --disable-pip-version-check --index-url "$index" torch==2.13.0 torchvision==0.28.0
  else
    echo ">>> installing torch==2.13.0 (CPU build) first, then vlmid and its dependencies (a few minutes, once)"
    "$PY" -m pip install -qq --disable-pip-version-check ${pin[@]+"${pin[@]}"} torch==2.13.0
  fi
  "$PY" -m pip install -qq --disable-pip-version-check ${pin[@]+"${pin[@]}"} -e ".[dev]"
  "$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (vlmid)" >/dev/null
  echo "$want" > "$stamp"
else
  echo ">>> set-up already done ($VENV); skipping installs"
fi

# Debian packages, as root only: quiet, refreshing the package lists only when the first try fails.
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_install() {
  echo ">>> installing Debian's $*"
  apt-get install -y -qq "$@" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null; }
}

FMNIST="${VLMID_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
if [ ! -e "$FMNIST/t10k-images-idx3-ubyte.gz" ]; then
  if can_apt; then
    apt_install dataset-fashion-mnist
  else
    echo ">>> Fashion-MNIST not found in $FMNIST: install Debian's dataset-fashion-mnist (as root)," >&2
    echo "    or point VLMID_FASHION_MNIST at a folder with the four *-idx*-ubyte.gz files." >&2
  fi
fi

# Debian's chromium and chromium-driver drive the book's browser test (tests/test_book.py, skipped without
# them); Debian's MathJax 2 (libjs-mathjax) typesets the book's formulas offline (TeX source without it).
debs=()
[ -x /usr/bin/chromium ] || debs+=(chromium)
[ -x /usr/bin/chromedriver ] || debs+=(chromium-driver)
[ -e /usr/share/javascript/mathjax/MathJax.js ] || debs+=(libjs-mathjax)
if [ ${#debs[@]} -gt 0 ]; then
  if can_apt; then
    apt_install "${debs[@]}"
  else
    echo ">>> Debian's ${debs[*]} not installed: install them (as root) for the book's browser test" >&2
    echo "    (skipped without chromium and chromium-driver) and its formulas (TeX source without libjs-mathjax)." >&2
  fi
fi

# The venv's own tools first on PATH, so papermill's kernel is this environment.
export PATH="$PWD/$VENV/bin:$PATH"
# No hub can be reached: never try.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export PYTHONHASHSEED=0 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg

case "$mode" in
  setup) echo ">>> set-up done"; exit 0 ;;
  tests) exec "$PY" -m pytest "${pytest_args[@]}" ;;
  book) exec "$PY" -m vlmid.harness.book ${book_args[@]+"${book_args[@]}"} ;;
esac

# ---- which model builds: every shipped one by default (tiny profile) -------------------------
ckpt="${VLMID_CHECKPOINTS:-checkpoints}"
shipped="$( { ls -d "$ckpt"/tiny-seed*/ 2>/dev/null || true; } | sed -nE 's#.*/tiny-seed([0-9]+)/$#\1#p' | sort -n |
           while read -r n; do if [ -f "$ckpt/tiny-seed$n/manifest.json" ]; then echo "$n"; fi; done | paste -sd, -)"
if [ -n "$seed" ]; then
  builds="$seed"
elif [ -z "$builds" ]; then
  if [ "$profile" = tiny ] && [ "$smoke" = 0 ] && [ "$rebuild" = 0 ] && [ -n "$shipped" ]; then
    builds="$shipped"
  else
    builds=0
  fi
  if [ "$quick" = 1 ]; then builds="${builds%%,*}"; fi
fi
echo ">>> model builds: $builds (shipped: ${shipped:-none})"

# ---- the tiny models: the shipped ones, verified; or rebuilt from nothing ----------------
if [ "$profile" = tiny ] && [ "$smoke" = 0 ]; then
  if [ "$rebuild" = 1 ]; then
    export VLMID_MODEL_SOURCE=built
    minutes="$("$PY" -c 'from vlmid.models.zoo import REBUILD_MINUTES; print(REBUILD_MINUTES)')"
    echo ">>> --rebuild-models: training the tiny BLIP and CLIP for seed $builds from nothing into data/models/ (about $minutes minutes on 2 cores)"
    "$PY" -m vlmid.models.build --seed "$builds" --force
  else
    for b in ${builds//,/ }; do
      if [ "${VLMID_MODEL_SOURCE:-shipped}" = shipped ] && [ -f "$ckpt/tiny-seed$b/manifest.json" ]; then
        echo ">>> verifying the shipped models for seed $b (SHA-256 of every file against its manifest)"
        if ! "$PY" -m vlmid.models.zoo verify --seed "$b"; then
          echo "run_all.sh: the shipped models of seed $b do not match their manifest: stopped before any notebook ran; results/ untouched" >&2
          exit 1
        fi
      else
        # no shipped models for this seed (or VLMID_MODEL_SOURCE=built): say what the first notebook will do
        "$PY" -m vlmid.models.zoo which --seed "$b"
      fi
    done
  fi
fi

args=(--profile "$profile" --builds "$builds")
[ -n "$only" ] && args+=(--only "$only")
[ "$smoke" = 1 ] && args+=(--smoke)
[ -n "$results" ] && args+=(--results "$results")
[ "$resume" = 1 ] && args+=(--resume)
[ "$quick" = 1 ] && args+=(--quick)
"$PY" -m vlmid.harness.pipeline "${args[@]}"
# The report and the README's results table are generated from results/, never written by hand.
# (A run into another --results folder leaves the README alone: python -m vlmid.harness.report --help.)
if [ "$smoke" = 0 ] && [ -z "$results" ]; then
  if [ "$profile" = tiny ]; then
    "$PY" -m vlmid.harness.report
  else  # a paper run has its own report in results/paper/; the README shows the committed tiny results
    "$PY" -m vlmid.harness.report --results results/paper --no-readme
  fi
fi
