#!/usr/bin/env python3
"""Write a synthetic Amazon Reviews 2023 category in the published JSON-lines layout, for the
import benchmark (BENCHMARKS.md, "Import"): DIR/Synthetic.jsonl (reviews) and
DIR/meta_Synthetic.jsonl (metadata), optionally gzipped.

Lines carry every field of the dataset card (McAuley Lab, amazon-reviews-2023), so the importer
parses and skips what a real file makes it skip: review title and text (30-80 words), reviewer
images, rating, helpful votes; metadata features, description, details, categories, and four
images with the MAIN one not first. Users and items are drawn with a Zipf-like popularity, so
some users have many reviews (the 5-core filter keeps them) and most have a few; timestamps are
whole seconds in milliseconds, so ties occur. Deterministic for a given --seed.

    python3 scripts/gen-amazon2023.py --reviews 2000000 --items 200000 --out /tmp/amz
"""

import argparse
import gzip
import json
import os
import random
import string

WORDS = (
    "the a and of to for with this that it is was my great good works well quality price "
    "fits easy use product would recommend love nice small large battery screen sound color "
    "bought after before again does not very really too much time day week month year "
    "sturdy cheap broke returned perfect exactly described arrived quickly package box "
    "cable charger case cover lens filter tripod microscope beaker flask pipette gloves"
).split()


def ident(rng, n, alphabet=string.ascii_uppercase + string.digits):
    return "".join(rng.choices(alphabet, k=n))


def zipf_index(rng, n, s=1.1):
    """An index in [0, n) with P(i) roughly proportional to 1 / (i + 1)^s (inverse CDF of a
    continuous power law, good enough for a benchmark's skew)."""
    u = rng.random()
    a = 1.0 - s
    hi = (n + 1) ** a
    x = (1.0 + u * (hi - 1.0)) ** (1.0 / a)
    return min(int(x) - 1, n - 1)


def sentence(rng, lo, hi):
    return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi))).capitalize() + "."


def image(rng, variant):
    name = ident(rng, 11, string.ascii_letters + string.digits)
    base = "https://m.media-amazon.com/images/I/"
    return {
        "thumb": f"{base}{name}._SS40_.jpg",
        "large": f"{base}{name}.jpg",
        "variant": variant,
        "hi_res": f"{base}{name}._SL1500_.jpg" if rng.random() < 0.8 else None,
    }


def meta_line(rng, asin):
    images = [image(rng, v) for v in ("PT01", "MAIN", "PT02", "PT03")]
    return {
        "main_category": "Industrial & Scientific",
        "title": sentence(rng, 4, 14),
        "average_rating": round(rng.uniform(1, 5), 1),
        "rating_number": rng.randint(1, 5000),
        "features": [sentence(rng, 6, 16) for _ in range(rng.randint(0, 5))],
        "description": [sentence(rng, 10, 40) for _ in range(rng.randint(0, 2))],
        "price": round(rng.uniform(1, 300), 2) if rng.random() < 0.7 else None,
        "images": images,
        "videos": [],
        "store": ident(rng, 8, string.ascii_letters),
        "categories": ["Industrial & Scientific", "Lab & Scientific Products"],
        "details": {"Brand": ident(rng, 6, string.ascii_letters), "Item Weight": "8 ounces"},
        "parent_asin": asin,
        "bought_together": None,
    }


def review_line(rng, user, asin, t_ms):
    return {
        "rating": float(rng.randint(1, 5)),
        "title": sentence(rng, 2, 8),
        "text": sentence(rng, 30, 80),
        "images": [],
        "asin": asin,
        "parent_asin": asin,
        "user_id": user,
        "timestamp": t_ms,
        "helpful_vote": rng.randint(0, 10),
        "verified_purchase": rng.random() < 0.9,
    }


def open_out(path, gz):
    return gzip.open(path + ".gz", "wt", compresslevel=6) if gz else open(path, "w")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reviews", type=int, default=2_000_000)
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--users", type=int, default=0, help="default: reviews / 4")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--gzip", action="store_true")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    n_users = a.users or max(1, a.reviews // 4)
    asins = [f"B{ident(rng, 9)}" for _ in range(a.items)]
    users = [ident(rng, 28) for _ in range(n_users)]
    with open_out(os.path.join(a.out, "meta_Synthetic.jsonl"), a.gzip) as f:
        for asin in asins:
            f.write(json.dumps(meta_line(rng, asin)) + "\n")
    with open_out(os.path.join(a.out, "Synthetic.jsonl"), a.gzip) as f:
        for _ in range(a.reviews):
            user = users[zipf_index(rng, n_users, 0.8)]
            asin = asins[zipf_index(rng, a.items, 0.9)]
            t_ms = rng.randint(1_300_000_000, 1_690_000_000) * 1000
            f.write(json.dumps(review_line(rng, user, asin, t_ms)) + "\n")


if __name__ == "__main__":
    main()
