"""Sentence splitters for score.granularity=sentence, compared on what reviews hold and on speed.

Correctness: hand-written cases, each a review and the sentences a reader sees, in the categories the choice
turns on (IMDB's ``<br />`` tags, ellipses, quotes, abbreviations, missing spaces after periods, numbers,
repeated punctuation). A case passes when the splitter returns exactly those sentences (white space and
``<br />`` tags around them aside). Speed: reviews per second over 2,000 IMDB test reviews (fixed seed), one
process, the same run for every splitter. Each library is measured alone, after this project's paragraph cut
(``+ breaks``), and the chosen one as scoring runs it (``inference.sentences.sentence_spans``).

    pip install pysbd syntok blingfire   # the candidates not installed with the package (sentencex is)
    python benchmarks/sentence_splitters.py --imdb ../shared/data/imdb

Prints one table and writes ``benchmarks/results/sentence_splitters.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))

CASES = [
    ("br", "Great film.<br /><br />The ending though was weak.", ["Great film.", "The ending though was weak."]),
    ("br", "Loved the cast<br /><br />Hated the plot", ["Loved the cast", "Hated the plot"]),
    ("br", "A fine cast.<br/>A dull plot.<BR>A good score.", ["A fine cast.", "A dull plot.", "A good score."]),
    ("ellipsis", "It was... fine, I guess. Then it got worse.", ["It was... fine, I guess.", "Then it got worse."]),
    ("ellipsis", "I waited and waited... Nothing happened.", ["I waited and waited...", "Nothing happened."]),
    ("quotes", '"Why?" she asked. He said nothing.', ['"Why?" she asked.', "He said nothing."]),
    ("quotes", 'He called it "a masterpiece." I disagree.', ['He called it "a masterpiece."', "I disagree."]),
    ("abbreviations", "Mr. Smith and Dr. Jones star. It is great.", ["Mr. Smith and Dr. Jones star.", "It is great."]),
    (
        "abbreviations",
        "The U.S. release was cut, e.g. the ending. Shame.",
        ["The U.S. release was cut, e.g. the ending.", "Shame."],
    ),
    ("abbreviations", "Batman vs. Superman etc. was long. Ok.", ["Batman vs. Superman etc. was long.", "Ok."]),
    ("missing space", "Awful acting.The plot was worse.", ["Awful acting.", "The plot was worse."]),
    ("missing space", "Good start!Bad end.", ["Good start!", "Bad end."]),
    ("numbers", "It runs 2.5 hours. Too long.", ["It runs 2.5 hours.", "Too long."]),
    ("repeated", "Best movie ever!!! Go see it.", ["Best movie ever!!!", "Go see it."]),
    ("repeated", "Really?! I doubt it.", ["Really?!", "I doubt it."]),
    ("parentheses", "(It was bad.) I left early.", ["(It was bad.)", "I left early."]),
]
BREAKS = re.compile(r"^(\s|<br\s*/?>)+|(\s|<br\s*/?>)+$", re.IGNORECASE)


def clean(piece: str) -> str:
    return BREAKS.sub("", piece)


def splitters() -> dict:
    """name -> (text -> list of sentence strings), for each candidate installed here."""
    found = {}
    try:
        import sentencex

        found["sentencex"] = lambda t: [
            t[b["start_index"] : b["end_index"]] for b in sentencex.get_sentence_boundaries("en", t)
        ]
    except ImportError:
        pass
    try:
        import pysbd

        segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
        found["pysbd"] = lambda t: [s.sent for s in segmenter.segment(t)]
    except ImportError:
        pass
    try:
        from syntok import segmenter as syntok

        def split_syntok(t: str) -> list[str]:
            return [
                t[s[0].offset - len(s[0].spacing) : s[-1].offset + len(s[-1].value)]
                for p in syntok.analyze(t)
                for s in p
            ]

        found["syntok"] = split_syntok
    except ImportError:
        pass
    try:
        import blingfire

        found["blingfire"] = lambda t: [t[a:b] for a, b in blingfire.text_to_sentences_and_offsets(t)[1]]
    except ImportError:
        pass
    from spark_sentiment.inference.sentences import paragraphs, sentence_spans

    def with_breaks(split):
        # this project's paragraph cut (<br /> tags, blank lines) first, then the library on each paragraph
        return lambda t: [piece for a, b in paragraphs(t) if t[a:b].strip() for piece in split(t[a:b])]

    for name in list(found):
        found[f"{name} + breaks"] = with_breaks(found[name])
    found["sentence_spans (what scoring runs)"] = lambda t: [t[a:b] for a, b in sentence_spans(t)]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imdb", required=True, help="folder with test.parquet")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    from score_throughput import machine_info

    test = pd.read_parquet(f"{args.imdb.rstrip('/')}/test.parquet", columns=["text"])
    texts = test["text"].iloc[np.random.default_rng(2026).permutation(len(test))[: args.rows]].tolist()
    categories = list(dict.fromkeys(category for category, _, _ in CASES))
    rows = []
    for name, split in splitters().items():
        passed = {c: [0, 0] for c in categories}
        failures = []
        for category, text, expected in CASES:
            got = [clean(piece) for piece in split(text) if clean(piece)]
            passed[category][1] += 1
            if got == expected:
                passed[category][0] += 1
            else:
                failures.append({"case": text, "got": got})
        split(texts[0])  # warm-up
        started = time.perf_counter()
        sentences = sum(len(split(t)) for t in texts)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "splitter": name,
                "passed": {c: f"{a}/{b}" for c, (a, b) in passed.items()},
                "total": sum(a for a, _ in passed.values()),
                "reviews_per_s": round(len(texts) / seconds, 1),
                "sentences_per_review": round(sentences / len(texts), 2),
                "failures": failures,
            }
        )
    machine = machine_info()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sentence_splitters.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    print(f"\n{machine['cpu']}, {machine['cores']} cores; {len(texts)} IMDB test reviews, {len(CASES)} cases\n")
    print("| splitter | " + " | ".join(categories) + " | all cases | reviews/s | sentences per review |")
    print("|---|" + "---:|" * (len(categories) + 3))
    for r in rows:
        cells = " | ".join(r["passed"][c] for c in categories)
        speed = f"{r['reviews_per_s']} | {r['sentences_per_review']}"
        print(f"| {r['splitter']} | {cells} | {r['total']}/{len(CASES)} | {speed} |")


if __name__ == "__main__":
    main()
