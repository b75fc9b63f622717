"""Trained zstd dictionaries, end to end.

After `dictionary_after` small messages are stored without a dictionary,
the scheduler trains one when a poll ends, stores it in ingestd.dict and
compresses every later message with it (blob.dict_id).  A later process
starts with the newest one.  Whatever dictionary wrote a blob, export and
verify read it back byte for byte.

max_connections_per_host = 1 makes the polls of one process run one after
the other (every mailbox is on the one Dovecot), so which poll trains and
which polls use the result is deterministic.
"""

import re

import mailgen
from harness import sha256_hex
from test_ingest import Archive

# Mail without attachments: the small messages a dictionary is for.
SMALL_KINDS = ("plain", "utf8", "latin1", "html", "alternative", "dots",
               "crlf")
# Below the 64 KiB sampling bound even once Dovecot adds CRs.
SMALL_MAX = 56_000


def small_mail(seed, count, cap=SMALL_MAX):
    """count messages of the small kinds, mailgen's sizes clipped to
    cap."""
    gen = mailgen.MailGen(seed)
    return [gen.message(kind=SMALL_KINDS[i % len(SMALL_KINDS)],
                        size=min(gen.sample_size(), cap))
            for i in range(count)]


def blob_dicts(ar):
    """{sha256 hex: dict_id or None} of every stored blob."""
    rows = ar.sql("SELECT encode(sha256, 'hex'), dict_id FROM blob;")
    return {r[0]: (int(r[1]) if r[1] else None) for r in rows}


def dict_ids(ar):
    return [int(r[0]) for r in ar.sql("SELECT id FROM dict ORDER BY id;")]


def check_exported(ar, want):
    """export writes exactly want ({account: [served bytes]}), byte-exact."""
    got = ar.export()
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for acct, msgs in want.items():
        files = {sha256_hex(b) + ".eml": b for b in msgs}
        assert sorted(got[acct]) == sorted(files), \
            "export of %s: %d files, want %d" % (acct, len(got[acct]),
                                                len(files))
        for f, b in files.items():
            assert got[acct][f] == b, "export %s/%s is not byte-exact" % (
                acct, f)


def check_verify(ar, n):
    """verify passes over n blobs, loading each dictionary once."""
    out = ar.ok("-v", "verify")
    assert "verified %d messages: 0 damaged" % n in out, out
    err = ar.last[3]
    loads = re.findall(r"loaded dictionary (\d+)", err)
    assert "1" in loads, "verify -v did not say it loaded dictionary 1"
    assert sorted(loads) == sorted(set(loads)), \
        "verify loaded a dictionary more than once: %s" % loads


def test_dictionary_trained_used_and_read_back(env):
    """The first poll stores plain blobs and trains; the next poll of the
    same process and every poll of the next process use the dictionary; a
    config with dictionary_after = 0 stops using it; export and verify
    read every blob back whichever way it was written."""
    ar = Archive(env, "dict")
    first = ar.mailbox(small_mail(4000, 40))
    second = ar.mailbox(small_mail(4001, 15))
    ar.snapshot()
    served = {a: [b for _, b in ar.expected[a]] for a in (first, second)}
    ar.write_config(extra={"dictionary_after": 30,
                           "max_connections_per_host": 1})

    summ = ar.once()
    assert summ[first]["archived"] == 40 and \
        summ[second]["archived"] == 15, summ
    err = ar.last[3]
    assert re.search(r"trained compression dictionary 1: \d+ bytes from "
                     r"40 messages", err), ar.context()
    assert dict_ids(ar) == [1]
    dicts = blob_dicts(ar)
    for b in served[first]:
        assert dicts[sha256_hex(b)] is None, "the training poll used a " \
            "dictionary"
    for b in served[second]:
        assert dicts[sha256_hex(b)] == 1, "a poll after training stored " \
            "a blob without the dictionary"
    for a in (first, second):
        ar.check_archived(a)
        ar.check_drained(a)

    # A new process: it starts with the stored dictionary and trains none.
    later = small_mail(4002, 10)
    for m in later:
        ar.dc.deliver(first, m)
    ar.once()
    assert "compressing with dictionary 1" in ar.last[3], ar.context()
    assert "trained" not in ar.last[3], ar.context()
    assert dict_ids(ar) == [1]
    dicts = blob_dicts(ar)
    for m in later:
        b = mailgen.served(m)
        served[first].append(b)
        assert dicts[sha256_hex(b)] == 1, "a restarted process stored a " \
            "blob without the dictionary"

    # dictionary_after = 0: no dictionary, old blobs still readable.
    plain = small_mail(4003, 5)
    for m in plain:
        ar.dc.deliver(second, m)
    ar.write_config(extra={"dictionary_after": 0})
    ar.once()
    dicts = blob_dicts(ar)
    for m in plain:
        b = mailgen.served(m)
        served[second].append(b)
        assert dicts[sha256_hex(b)] is None

    check_exported(ar, served)
    check_verify(ar, 40 + 15 + 10 + 5)


def _archive_sets(env, prefix, sets, dictionary_after):
    """A fresh archive whose mailboxes hold sets (one each, polled in this
    order); returns the Archive."""
    ar = Archive(env, prefix)
    for msgs in sets:
        ar.mailbox(msgs)
    ar.write_config(extra={"dictionary_after": dictionary_after,
                           "max_connections_per_host": 1})
    ar.once()
    return ar


def test_dictionary_compresses_small_mail_better(env):
    """The same small messages (up to 8 KB, where a message alone gives
    zstd too little to learn from) take less space with the trained
    dictionary than without one: two fresh databases, the same mail."""
    train = small_mail(5000, 150, cap=8000)
    test = small_mail(5001, 150, cap=8000)
    raw = sum(len(mailgen.served(m)) for m in test)
    hashes = {sha256_hex(mailgen.served(m)) for m in test}
    stored = {}
    for name, after in (("without", 0), ("with", 100)):
        ar = _archive_sets(env, "gain", (train, test), after)
        blobs = ar.blobs()
        assert hashes <= set(blobs)
        stored[name] = sum(blobs[h][1] for h in hashes)
        if after:
            assert set(blob_dicts(ar)[h] for h in hashes) == {1}
        ar.ok("verify")
    print("# small mail, %d messages, %d bytes: raw/stored %.2fx without "
          "a dictionary, %.2fx with one" % (
              len(test), raw, raw / stored["without"],
              raw / stored["with"]))
    assert stored["with"] < stored["without"] * 0.9, \
        "the dictionary saved too little: %d vs %d bytes" % (
            stored["with"], stored["without"])


def test_dictionary_training_failure_is_not_fatal(env):
    """Too few messages to train on: a warning, no dictionary, the poll
    and its messages unharmed."""
    ar = Archive(env, "dictfail")
    name = ar.mailbox(small_mail(5100, 3))
    ar.snapshot()
    ar.write_config(extra={"dictionary_after": 1})
    summ = ar.once()
    ar.check_summary(summ, name, archived=3, errors=0)
    assert re.search(r"compression dictionary: 3 messages .* at least 10 "
                     r"are needed; compressing without one",
                     ar.last[3]), ar.context()
    assert dict_ids(ar) == []
    assert set(blob_dicts(ar).values()) == {None}
    ar.check_archived(name)
    ar.check_export(ar.export())
