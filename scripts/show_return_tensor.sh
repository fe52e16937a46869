#!/usr/bin/env bash
# Show the latest data-lake return tensor: shape, assets, time span, missing count, first rows.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/show_return_tensor.sh [--head N] [DATA_CLEANING_DIR]

Print the shape, assets, time span, missing-cell count and the first N rows (default 5)
of return_tensor.pt written by `algotrader data_cleaning`.

DATA_CLEANING_DIR  a data-cleaning week folder (YYYY-WW, holding return_tensor.pt) or a
                   folder of such week folders (the latest is used). Default: the latest
                   week folder under DATA_LAKE_SOURCE (from the environment or ./.env),
                   else ./data/data_lake.
--head N           number of rows to print (positive integer, default 5)
-h, --help         show this help
USAGE
}

head_rows=5
dir=""
while (($# > 0)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --head)
            (($# >= 2)) || { echo "show_return_tensor.sh: --head needs a value" >&2; exit 2; }
            head_rows="$2"; shift 2 ;;
        --head=*) head_rows="${1#--head=}"; shift ;;
        -*) echo "show_return_tensor.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *)
            [[ -z "$dir" ]] || { echo "show_return_tensor.sh: only one DATA_CLEANING_DIR" >&2; exit 2; }
            dir="$1"; shift ;;
    esac
done
if ! [[ "$head_rows" =~ ^[1-9][0-9]*$ ]]; then
    echo "show_return_tensor.sh: --head must be a positive integer, got '$head_rows'" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
args=(returns --head "$head_rows")
[[ -z "$dir" ]] || args+=("$dir")
# --project keeps the caller's working directory, so .env and relative paths resolve there
exec uv run --project "$root" python -m algo_trader.infrastructure.data.show_tensor "${args[@]}"
