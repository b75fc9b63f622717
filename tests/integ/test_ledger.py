"""The tamper-evident ledger: every archived message is a leaf of a Merkle
tree (RFC 9162) whose heads are signed as C2SP checkpoints.

A message exported from the archive is proved by `prove` and checked
offline by `verify-proof` (and by an independent verifier written here in
Python, with the openssl command for the Ed25519 signature); a different
message, a wrong key or an altered path fails.
`ledger verify` exits 1 naming the message for each kind of damage a
superuser could do: a blob chunk altered, a delivery deleted with the
triggers disabled, a leaf altered, a checkpoint's signature altered.
"""

import base64
import hashlib
import json
import os
import stat
import subprocess

import harness
import mailgen
from test_ingest import Archive


def ledger_config(ar, key, extra=""):
    """Appends ledger = { ... } to the archive's config."""
    with open(ar.conf, "a") as f:
        f.write('ledger = { signing_key = "%s"; key_name = "%s";%s };\n'
                % (key, "archive.test/ingestd", extra))


def setup(env, prefix, n=4, command=None, delete="never"):
    ar = Archive(env, prefix)
    gen = mailgen.MailGen(4100 + n)
    msgs = [gen.message(kind="plain", size=2000 + 500 * i) for i in range(n)]
    # Kept on the server: the leaves are then the ingests alone (a
    # deletion adds its own event; see test_server_gone_and_exports).
    acct = ar.mailbox(msgs, delete=delete)
    ar.snapshot()
    ar.write_config()
    key = os.path.join(ar.dir, "ledger.key")
    extra = (' checkpoint_command = "%s";' % command) if command else ""
    ledger_config(ar, key, extra)
    # keygen needs neither the key (not written yet) nor the database.
    rc, out, err = ar.run("ledger", "keygen", "--out", key)
    assert rc == 0, ar.context()
    vkey = out.strip()
    assert vkey.startswith("archive.test/ingestd+"), vkey
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    ar.once()
    return ar, acct, key, vkey


def export(ar, acct):
    out = os.path.join(ar.dir, "export")
    ar.ok("export", "--out", out, "--account", acct)
    d = os.path.join(out, acct)
    return {f[:-4]: os.path.join(d, f) for f in os.listdir(d)}


def ledger_verify(ar):
    rc, out, err = ar.run("ledger", "verify")
    return rc, out


# ---- an independent verifier: RFC 9162 inclusion, the entry's fields

def _node(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()


def py_verify(proof, eml):
    body = proof["checkpoint"].split("\n\n")[0] + "\n"
    origin, size, root_b64 = body.split("\n")[:3]
    root = base64.b64decode(root_b64)
    assert int(size) == proof["tree_size"]
    sha = hashlib.sha256(eml).hexdigest()
    for leaf in proof["leaves"]:
        entry = base64.b64decode(leaf["entry"])
        lines = entry.decode().split("\n")
        assert lines[0] == "ingestd-ledger v1" and lines[1] == "kind ingest"
        fields = dict(l.split(" ", 1) for l in lines[2:] if l)
        if fields["sha256"] != sha or int(fields["size"]) != len(eml):
            return False
        fn, sn = leaf["leaf_index"], proof["tree_size"] - 1
        r = hashlib.sha256(b"\x00" + entry).digest()
        for p in leaf["audit_path"]:
            p = bytes.fromhex(p)
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                r = _node(p, r)
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
            else:
                r = _node(r, p)
            fn >>= 1
            sn >>= 1
        if sn != 0 or r != root:
            return False
    return True


def py_verify_note(note, vkey, tmpdir):
    """The checkpoint's signature, checked with the openssl command line
    and the key id recomputed here: True if it verifies."""
    name, keyid, key_b64 = vkey.split("+", 2)
    raw = base64.b64decode(key_b64)
    assert raw[0] == 1 and len(raw) == 33
    pub = raw[1:]
    assert hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4] \
        == bytes.fromhex(keyid)
    text, sigs = note.split("\n\n", 1)
    text += "\n"
    for line in sigs.splitlines():
        dash, signer, blob = line.split(" ")
        blob = base64.b64decode(blob)
        if dash != "\u2014" or signer != name or blob[:4] != \
                bytes.fromhex(keyid):
            continue
        paths = {k: os.path.join(tmpdir, k) for k in ("pub", "txt", "sig")}
        # SubjectPublicKeyInfo of an Ed25519 key (RFC 8410).
        open(paths["pub"], "wb").write(
            bytes.fromhex("302a300506032b6570032100") + pub)
        open(paths["txt"], "wb").write(text.encode())
        open(paths["sig"], "wb").write(blob[4:])
        r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin",
                            "-inkey", paths["pub"], "-keyform", "DER",
                            "-rawin", "-in", paths["txt"], "-sigfile",
                            paths["sig"]], capture_output=True)
        return r.returncode == 0
    return False


# --------------------------------------------------------------------------

def test_prove_and_verify_proof(env):
    """An exported message proves; the proof checks offline with the key,
    and in Python; another message, another key, an altered path fail.
    keygen never overwrites a key."""
    ar, acct, key, vkey = setup(env, "lprove")
    before = open(key, "rb").read()
    rc, out, err = ar.run("ledger", "keygen", "--out", key)
    assert rc != 0 and "never overwritten" in err, ar.context()
    assert open(key, "rb").read() == before

    out = ar.ok("ledger", "checkpoint")
    assert out.startswith("archive.test/ingestd\n4\n"), out
    assert "\n\n\u2014 archive.test/ingestd " in out, out
    files = export(ar, acct)
    assert len(files) == 4
    shas = sorted(files)
    proof = os.path.join(ar.dir, "proof.json")
    ar.ok("prove", shas[0], "--out", proof)
    p = json.load(open(proof))
    assert p["sha256"] == shas[0] and p["tree_size"] == 4
    assert len(p["audit_path"]) == 2
    eml = open(files[shas[0]], "rb").read()
    assert py_verify(p, eml)
    assert py_verify_note(p["checkpoint"], vkey, ar.dir)
    forged = p["checkpoint"].replace("\n4\n", "\n5\n", 1)
    assert not py_verify_note(forged, vkey, ar.dir)

    # Offline: no config, no database.
    rc, out, err = harness.run_ingestd(["verify-proof", proof,
                                        files[shas[0]], "--key", vkey])
    assert rc == 0 and out.startswith("OK: "), (rc, out, err)

    rc, out, err = harness.run_ingestd(["verify-proof", proof,
                                        files[shas[1]], "--key", vkey])
    assert rc == 1 and "FAILED" in out, (rc, out, err)

    other = os.path.join(ar.dir, "other.key")
    rc, okey, err = harness.run_ingestd(["ledger", "keygen", "--out", other,
                                         "--name", "archive.test/ingestd"])
    assert rc == 0, err
    rc, out, err = harness.run_ingestd(["verify-proof", proof,
                                        files[shas[0]], "--key",
                                        okey.strip()])
    # Another key of the same name: another key id, no signature of its.
    assert rc == 1 and "FAILED" in out and "signature" in out, \
        (rc, out, err)

    p["audit_path"][0] = "%064x" % (int(p["audit_path"][0], 16) ^ 1)
    p["leaves"][0]["audit_path"] = p["audit_path"]
    bad = os.path.join(ar.dir, "bad.json")
    json.dump(p, open(bad, "w"))
    assert not py_verify(p, eml)
    rc, out, err = harness.run_ingestd(["verify-proof", bad, files[shas[0]],
                                        "--key", vkey])
    assert rc == 1 and "audit path" in out, (rc, out, err)

    # A clean ledger verifies.
    rc, out = ledger_verify(ar)
    assert rc == 0, ar.context()
    assert "4 leaves, 1 checkpoints" in out, out


def test_checkpoint_command_gets_the_note(env):
    """checkpoint_command runs with the new checkpoint on stdin; nothing
    new, no checkpoint."""
    d = env.tmpdir("lcmd")
    got = os.path.join(d, "got")
    cmd = os.path.join(d, "send")
    with open(cmd, "w") as f:
        f.write("#!/bin/sh\ncat >> %s\n" % got)
    os.chmod(cmd, 0o755)
    ar, acct, key, vkey = setup(env, "lcmd", n=3, command=cmd)
    out = ar.ok("ledger", "checkpoint")
    assert open(got).read() == out
    assert out.startswith("archive.test/ingestd\n3\n")
    out = ar.ok("ledger", "checkpoint")
    assert "nothing new" in out
    assert open(got).read().count("archive.test/ingestd\n") == 1


def test_ledger_is_append_only(env):
    """UPDATE, DELETE and TRUNCATE of the ledger's tables are refused,
    also with session_replication_role = replica."""
    ar, acct, key, vkey = setup(env, "lappend", n=2)
    ar.ok("ledger", "checkpoint")
    for q in ("UPDATE ledger SET kind = 'x';",
              "DELETE FROM ledger_node;",
              "TRUNCATE ledger_checkpoint;",
              "SET session_replication_role = replica; "
              "DELETE FROM ledger;"):
        try:
            ar.sql(q)
        except Exception as e:  # psql fails
            assert "append-only" in str(e), str(e)
        else:
            raise AssertionError("%s was not refused" % q)
    assert int(ar.sql("SELECT count(*) FROM ledger;")[0][0]) == 2


def test_tampering_is_detected(env):
    """Each kind of damage makes ledger verify exit 1 naming the message
    by its SHA-256."""
    ar, acct, key, vkey = setup(env, "ltamper", n=5)
    ar.ok("ledger", "checkpoint")
    rc, out = ledger_verify(ar)
    assert rc == 0, ar.context()
    shas = sorted(r["sha256"] for r in ar.deliveries())

    # A chunk altered.
    ar.sql("UPDATE blob_chunk SET data = set_byte(data, 20, "
           "get_byte(data, 20) # 1) WHERE sha256 = decode('%s', 'hex');"
           % shas[0])
    rc, out = ledger_verify(ar)
    assert rc == 1 and "damaged %s:" % shas[0] in out, ar.context()

    # A delivery deleted with its triggers disabled, as a superuser can.
    ar.sql("ALTER TABLE delivery DISABLE TRIGGER ALL; "
           "DELETE FROM delivery WHERE sha256 = decode('%s', 'hex'); "
           "ALTER TABLE delivery ENABLE TRIGGER ALL;" % shas[1])
    rc, out = ledger_verify(ar)
    assert rc == 1 and "damaged %s: ledger leaf" % shas[1] in out, \
        ar.context()

    # A delivery deleted outside a purge: refused (migration 0009's
    # guard); with only that guard disabled, as a superuser can, the
    # ledger's own trigger still leaves a tombstone that says so.
    try:
        ar.sql("DELETE FROM delivery WHERE sha256 = decode('%s', 'hex');"
               % shas[2])
        refused = False
    except harness.HarnessError as e:
        refused = "only through ingestd purge" in str(e)
    assert refused, "a delivery was deleted outside a purge"
    ar.sql("ALTER TABLE delivery DISABLE TRIGGER delivery_purge_only; "
           "DELETE FROM delivery WHERE sha256 = decode('%s', 'hex'); "
           "ALTER TABLE delivery ENABLE ALWAYS TRIGGER delivery_purge_only;"
           % shas[2])
    rc, out = ledger_verify(ar)
    assert rc == 1 and "damaged %s: deleted outside a purge" % shas[2] \
        in out, ar.context()

    # A leaf altered (its size), the append-only trigger disabled.
    ar.sql("ALTER TABLE ledger DISABLE TRIGGER ledger_append_only; "
           "UPDATE ledger SET entry = convert_to(replace(convert_from("
           "entry, 'UTF8'), 'size ', 'size 1'), 'UTF8') "
           "WHERE sha256 = decode('%s', 'hex'); "
           "ALTER TABLE ledger ENABLE ALWAYS TRIGGER ledger_append_only;"
           % shas[3])
    rc, out = ledger_verify(ar)
    assert rc == 1 and "damaged %s: leaf" % shas[3] in out, ar.context()

    # A stored subtree altered: proofs would be refused; verify says so.
    ar.sql("ALTER TABLE ledger_node DISABLE TRIGGER ledger_append_only; "
           "UPDATE ledger_node SET hash = sha256(hash) "
           "WHERE level = 1 AND idx = 0; "
           "ALTER TABLE ledger_node ENABLE ALWAYS TRIGGER "
           "ledger_append_only;")
    rc, out = ledger_verify(ar)
    assert rc == 1 and "stored subtree (level 1, index 0) is not" in out \
        and "stored subtree (level 2, index 0) is not" in out, ar.context()

    # A checkpoint's signature altered.
    ar.sql("ALTER TABLE ledger_checkpoint DISABLE TRIGGER "
           "ledger_append_only; "
           "UPDATE ledger_checkpoint SET note = regexp_replace(note, "
           "'[A-Za-z0-9+/]{3}=\\n$', 'AAA=' || chr(10)); "
           "ALTER TABLE ledger_checkpoint ENABLE ALWAYS TRIGGER "
           "ledger_append_only;")
    rc, out = ledger_verify(ar)
    assert rc == 1 and "does not verify" in out, ar.context()


def test_run_checkpoints_on_its_timer(env):
    """run signs a checkpoint every checkpoint_interval seconds once the
    ledger grew, and hands each to checkpoint_command."""
    from test_daemon import Daemon, wait_for
    d = env.tmpdir("lrun")
    got = os.path.join(d, "got")
    cmd = os.path.join(d, "send")
    with open(cmd, "w") as f:
        f.write("#!/bin/sh\ncat >> %s\n" % got)
    os.chmod(cmd, 0o755)
    ar = Archive(env, "lrun")
    gen = mailgen.MailGen(4200)
    acct = ar.mailbox([gen.message() for _ in range(3)], delete="never")
    ar.snapshot()
    ar.write_config(poll_interval=1)
    key = os.path.join(ar.dir, "ledger.key")
    ledger_config(ar, key, ' checkpoint_interval = 1; '
                  'checkpoint_command = "%s";' % cmd)
    ar.ok("ledger", "keygen", "--out", key)
    daemon = Daemon(ar.conf)
    try:
        wait_for("a checkpoint of 3 leaves", lambda: os.path.exists(got) and
                 "\n3\n" in open(got).read())
        ar.dc.deliver(acct, gen.message())
        wait_for("a checkpoint of 4 leaves",
                 lambda: "\n4\n" in open(got).read())
        rc, err = daemon.terminate()
    finally:
        daemon.kill()
    assert rc == 0, err[-3000:]
    sizes = [int(r[0]) for r in
             ar.sql("SELECT tree_size FROM ledger_checkpoint ORDER BY id;")]
    assert sizes == sorted(set(sizes)) and sizes[-1] == 4, sizes
    rc, out = ledger_verify(ar)
    assert rc == 0, ar.context()


def test_other_events_and_since(env):
    """ingestd.ledger_append() records any event in the caller's
    transaction (a rolled-back one leaves none); its entry is the kind and
    fields in the order given.  A checkpoint kept outside still verifies
    with --since after the ledger grew; a forged one does not."""
    ar, acct, key, vkey = setup(env, "lother", n=2)
    first = ar.ok("ledger", "checkpoint")
    since = os.path.join(ar.dir, "since.note")
    open(since, "w").write(first)
    ar.sql("SELECT ingestd.ledger_append('hold-add', 'name', 'matter-17', "
           "'reason', 'Smith v. Acme');")
    ar.sql("BEGIN; SELECT ingestd.ledger_append('hold-add', 'name', 'x'); "
           "ROLLBACK;")
    ar.sql("SELECT ingestd.ledger_append('no-fields');")
    try:
        ar.sql("SELECT ingestd.ledger_append('Bad Kind');")
    except Exception as e:
        assert "bad kind" in str(e), str(e)
    else:
        raise AssertionError("a bad kind was accepted")
    out = ar.ok("ledger", "checkpoint")
    assert out.startswith("archive.test/ingestd\n4\n"), out
    entry = ar.sql("SELECT encode(entry, 'hex') FROM ledger "
                   "WHERE idx = 3;")[0][0]
    assert bytes.fromhex(entry) == \
        b"ingestd-ledger v1\nkind no-fields\n", entry
    entry = ar.sql("SELECT encode(entry, 'hex') FROM ledger "
                   "WHERE idx = 2;")[0][0]
    assert bytes.fromhex(entry) == (
        b"ingestd-ledger v1\nkind hold-add\nname matter-17\n"
        b"reason Smith%20v.%20Acme\n"), entry
    rc, out, err = ar.run("ledger", "verify", "--since", since)
    assert rc == 0, ar.context()
    # Each `ingestd verify` run is an event too.
    ar.ok("verify")
    ar.ok("ledger", "checkpoint")
    entry = ar.sql("SELECT encode(entry, 'hex') FROM ledger "
                   "WHERE kind = 'verify';")[0][0]
    assert bytes.fromhex(entry) == (
        b"ingestd-ledger v1\nkind verify\naccount \ncomplete yes\n"
        b"ok 2\ndamaged 0\n"), entry
    forged = first.replace("\n2\n", "\n1\n", 1)
    open(since, "w").write(forged)
    rc, out, err = ar.run("ledger", "verify", "--since", since)
    assert rc == 1 and "does not verify" in out, ar.context()


def _pending(ar, kind):
    """The fields of the ledger events of kind not yet sequenced, as
    dicts, in order."""
    rows = ar.sql("SELECT array_to_json(fields) FROM ledger_pending "
                  "WHERE kind = '%s' ORDER BY id;" % kind)
    out = []
    for (fields,) in rows:
        f = json.loads(fields)
        out.append(dict(zip(f[0::2], f[1::2])))
    return out


def test_server_gone_and_exports(env):
    """A message deleted from the server after its commit is an event of
    the ledger (migration 0010), and so is an export, with the SHA-256 of
    its manifest and of its SHA256SUMS."""
    ar, acct, key, vkey = setup(env, "lgone", n=3, delete="after-archive")
    ar.check_drained(acct)
    gone = _pending(ar, "server-gone")
    want = sorted((r["uidl"], r["sha256"]) for r in ar.deliveries(acct))
    assert sorted((g["uidl"], g["sha256"]) for g in gone) == want, gone
    assert all(g["account"] == acct and g["at"] for g in gone), gone

    out = os.path.join(ar.dir, "byquery")
    q = "account:" + acct
    ar.ok("export", "--query", q, "--out", out)
    ex = _pending(ar, "export")
    assert len(ex) == 1, ex
    with open(os.path.join(out, "manifest.jsonl"), "rb") as f:
        manifest = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(out, "SHA256SUMS"), "rb") as f:
        sums = hashlib.sha256(f.read()).hexdigest()
    assert ex[0] == {
        "account": "", "query_sha256": hashlib.sha256(q.encode()).hexdigest(),
        "complete": "yes", "deliveries": "3", "messages": "3",
        "damaged": "0", "manifest_sha256": manifest, "sums_sha256": sums,
    }, ex
    export(ar, acct)
    ex = _pending(ar, "export")
    assert len(ex) == 2 and ex[1]["account"] == acct and \
        ex[1]["messages"] == "3" and ex[1]["manifest_sha256"] == "", ex
    # Both kinds sequence and verify like the others.
    ar.ok("ledger", "checkpoint")
    rc, out = ledger_verify(ar)
    assert rc == 0, ar.context()
