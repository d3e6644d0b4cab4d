#!/usr/bin/env python3
"""Extract plain text from the rust-docs HTML (book, rust-by-example, reference, nomicon).

Usage: extract_docs.py OUT_DIR [--heldout-frac 0.02] [--seed 1234]
Writes OUT_DIR/train.txt and OUT_DIR/heldout.txt. Documents (one HTML page each) are
separated by a blank line; the held-out split is by document (seeded shuffle).
The docs are dual MIT/Apache-2.0 licensed (installed by `rustup component add rust-docs`).
"""
import argparse, html, os, random, re, subprocess, sys
from html.parser import HTMLParser

BOOKS = ["book", "rust-by-example", "reference", "nomicon"]
SKIP_TAGS = {"script", "style", "nav", "noscript", "head", "button", "svg", "aside", "header", "footer"}
VOID_TAGS = {"br", "img", "input", "meta", "link", "hr", "wbr", "source", "col", "area", "base", "embed", "track", "path", "rect", "circle", "use"}
BLOCK_TAGS = {"p", "div", "pre", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote", "dt", "dd", "table", "ul", "ol"}

class Extract(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.skip, self.in_main, self.pre = [], 0, 0, 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "main":
            self.in_main += 1
        if tag in VOID_TAGS:
            if tag == "br" and not self.skip:
                self.out.append("\n")
            return
        if self.skip:
            self.skip += 1
            return
        if tag in SKIP_TAGS or "hidden" in cls.split() or "boring" in cls.split() or "line-numbers" in cls or a.get("aria-hidden") == "true":
            self.skip = 1
            return
        if tag == "pre":
            self.pre += 1
            self.out.append("\n")
        elif tag in BLOCK_TAGS:
            self.out.append("\n")
    def handle_endtag(self, tag):
        if tag in VOID_TAGS:
            return
        if self.skip:
            self.skip -= 1
            return
        if tag == "main":
            self.in_main -= 1
        if tag == "pre":
            self.pre -= 1
            self.out.append("\n")
        elif tag in BLOCK_TAGS:
            self.out.append("\n")
    def handle_data(self, data):
        if self.skip or not self.in_main:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
        self.out.append(data)
    def text(self):
        t = "".join(self.out)
        lines = [l.rstrip() for l in t.split("\n")]
        t = "\n".join(lines)
        t = re.sub(r"\n{3,}", "\n\n", t).strip()
        return t

def page_text(path):
    p = Extract()
    with open(path, encoding="utf-8", errors="replace") as f:
        p.feed(f.read())
    return p.text()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--heldout-frac", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--doc-root", default=None)
    a = ap.parse_args()
    root = a.doc_root or os.path.join(subprocess.check_output(["rustc", "+stable", "--print", "sysroot"], text=True).strip(), "share/doc/rust/html")
    docs = []
    for b in BOOKS:
        base = os.path.join(root, b)
        for dp, _, fs in sorted(os.walk(base)):
            for fn in sorted(fs):
                if not fn.endswith(".html") or fn in ("print.html", "404.html", "toc.html") or "/searchindex" in fn:
                    continue
                t = page_text(os.path.join(dp, fn))
                if len(t) < 200:
                    continue
                # Redirect stubs of the first and second editions of the book ("... is no
                # longer distributed with Rust's documentation"): hundreds of identical pages
                # that a small model otherwise learns to recite.
                if "no longer distributed with Rust" in t:
                    continue
                docs.append((os.path.relpath(os.path.join(dp, fn), root), t))
    rng = random.Random(a.seed)
    idx = list(range(len(docs))); rng.shuffle(idx)
    total = sum(len(t) for _, t in docs)
    held, hc = set(), 0
    for i in idx:
        if hc >= a.heldout_frac * total:
            break
        held.add(i); hc += len(docs[i][1])
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "train.txt"), "w") as tr, open(os.path.join(a.out, "heldout.txt"), "w") as ho, open(os.path.join(a.out, "split.tsv"), "w") as sp:
        for i, (name, t) in enumerate(docs):
            (ho if i in held else tr).write(t + "\n\n")
            sp.write(("heldout" if i in held else "train") + "\t" + name + "\n")
    print(f"{len(docs)} documents, {total} chars, held-out {len(held)} docs {hc} chars", file=sys.stderr)

if __name__ == "__main__":
    main()
