#!/usr/bin/env bash
# Show the latest feature tensor of one group: shape, labels, time span, missing count, rows.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/show_feature_tensor.sh --group GROUP [--head N]

Print the shape, assets, features, time span, missing-cell count and the first N time
steps (default 5) of FEATURE_STORE_SOURCE/<latest YYYY-WW>/<GROUP>/features_tensor.pt,
written by `algotrader feature_engineering`. FEATURE_STORE_SOURCE comes from the
environment or ./.env, else ./data/feature_store.

--group GROUP  feature group, e.g. momentum, volatility, regime (required)
--head N       number of time steps to print (positive integer, default 5)
-h, --help     show this help
USAGE
}

head_rows=5
group=""
while (($# > 0)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --group | --head)
            (($# >= 2)) || { echo "show_feature_tensor.sh: $1 needs a value" >&2; exit 2; }
            if [[ "$1" == --group ]]; then group="$2"; else head_rows="$2"; fi
            shift 2 ;;
        --group=*) group="${1#--group=}"; shift ;;
        --head=*) head_rows="${1#--head=}"; shift ;;
        *) echo "show_feature_tensor.sh: unexpected argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z "$group" ]]; then
    echo "show_feature_tensor.sh: --group GROUP is required (see --help)" >&2
    exit 2
fi
if ! [[ "$head_rows" =~ ^[1-9][0-9]*$ ]]; then
    echo "show_feature_tensor.sh: --head must be a positive integer, got '$head_rows'" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# --project keeps the caller's working directory, so .env and relative paths resolve there
exec uv run --project "$root" python -m algo_trader.infrastructure.data.show_tensor \
    features --group "$group" --head "$head_rows"
