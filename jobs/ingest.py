"""Land reviews in a Delta table (from Parquet, Delta, the aclImdb folder layout or hf:<dataset>).

./spark-submit.sh jobs/ingest.py --source ../shared/data/imdb --split unsup --table reviews --limit 3000
"""

import sys

from spark_sentiment.io.ingest import main

if __name__ == "__main__":
    sys.exit(main())
