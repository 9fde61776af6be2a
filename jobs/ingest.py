"""Land reviews in a Delta table (from Parquet, Delta, the aclImdb folder layout or hf:<dataset>).

./spark-submit.sh jobs/ingest.py --source ../shared/data/imdb --split unsup --table reviews --limit 3000
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="Parquet/Delta path, aclImdb folder, table or hf:<dataset>")
    parser.add_argument("--split", help="split inside a folder of splits (e.g. unsup) or of a hub dataset")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--table", help="catalog table to write")
    target.add_argument("--path", help="Delta path to write")
    parser.add_argument("--limit", type=int, help="keep at most this many rows")
    parser.add_argument("--mode", choices=["overwrite", "append"], default="overwrite")
    args = parser.parse_args(argv)

    from spark_sentiment.core.errors import SentimentError
    from spark_sentiment.core.session import get_spark
    from spark_sentiment.io.ingest import ingest
    from spark_sentiment.io.tables import TableRef

    spark = get_spark("spark-sentiment-ingest")
    try:
        rows = ingest(spark, args.source, TableRef.of(args.path, args.table), args.split, args.limit, args.mode)
    except SentimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"rows": rows, "target": args.table or args.path}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
