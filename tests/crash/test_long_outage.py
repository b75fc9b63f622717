"""`make crashtest`: a database outage longer than ingestd's commit retry.

PostgreSQL is stopped in the middle of a poll of `ingestd run` and kept
down until that poll has given up on its commits (ingestd retries a
commit for a minute after the oldest message of a batch was queued) and
ended.  Nothing it fetched during the outage may be deleted from the
server; the poll is recorded as failed, naming the database, once it is
back; and the next polls archive everything, each message once.  See
_database_outage in tests/integ/test_outage.py for every check.
"""

from test_outage import _database_outage


def test_database_down_longer_than_the_commit_retry(env):
    _database_outage(env, "longstop", crash=False, give_up=True)


test_database_down_longer_than_the_commit_retry.timeout = 400
