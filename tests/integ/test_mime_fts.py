"""The indexer's full text always fits PostgreSQL's tsvector.

to_tsvector() refuses a text whose distinct lexemes, with their
alignment and positions, pass 1 MiB - 1 ("string is too long for
tsvector"): a message whose text did that could never be archived.
mime_text (tests/integ/mime_text.c) writes, for each kind of word that
makes the tsvector larger than the text (compounds, URLs, addresses,
non-ASCII that lengthens when lower-cased, non-ASCII punctuation, CJK,
short distinct words, repeats), a raw 3 MiB text and the text
store/mime keeps of a message carrying it.  The kept text must be
accepted by to_tsvector('simple', ...) and be cut (text_truncated);
the raw text must be refused, so the check can fail.
"""

import os
import re

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = range(9)


def _helper(name):
    build = os.environ.get("BUILD") or os.path.join(HERE, "..", "..",
                                                    "build")
    path = os.path.abspath(os.path.join(build, "tests", "integ", name))
    if not os.access(path, os.X_OK):
        raise harness.HarnessError("%s not built: run `make` first" % path)
    return path


def _tsvector(pg, path):
    """(ok, error text) of to_tsvector('simple', the file's text)."""
    sql = ("\\set t `cat %s`\n"
           "SELECT count(*) FROM unnest(to_tsvector('simple', :'t'));\n"
           % path)
    try:
        n = int(pg.scalar(sql))
        return n > 0, ""
    except harness.HarnessError as e:
        return False, str(e)


def test_full_text_fits_tsvector(env):
    tmp = env.tmpdir("fts")
    refused = 0
    for kind in KINDS:
        raw = os.path.join(tmp, "raw%d.txt" % kind)
        kept = os.path.join(tmp, "text%d.txt" % kind)
        p = harness.run([_helper("mime_text"), str(kind), raw, kept])
        out = p.stdout.decode()
        m = re.match(r"flags (\d+) text_len (\d+)", out)
        assert m, out
        assert int(m.group(1)) & 2, "kind %d: not cut: %s" % (kind, out)
        assert 0 < int(m.group(2)) <= 1 << 20, out
        ok, err = _tsvector(env.pg, kept)
        assert ok, "kind %d: kept text refused: %s" % (kind, err[-500:])
        ok, err = _tsvector(env.pg, raw)
        if not ok:
            assert "too long for tsvector" in err, err[-500:]
            refused += 1
    # Most raw texts are refused: the bound is needed, and checked.
    assert refused >= 6, "only %d raw texts refused" % refused
