"""moto's WSGI app, patched where our tests need it to behave as AWS does, served by granian
(see xtask/src/moto.rs).

Run as: python -c "$(cat moto_server.py)" -H 127.0.0.1 -p PORT
"""
import argparse
import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading

from moto.dynamodb.models.table import Table
from moto.sqs.models import Queue, SQSBackend

# DynamoDB: a conditional PutItem is atomic. moto checks the condition, then stores the item,
# with nothing held between; two concurrent conditional puts on one key could both pass.
_lock = threading.Lock()
_put_item = Table.put_item


def put_item(self, *args, **kwargs):
    with _lock:
        return _put_item(self, *args, **kwargs)


Table.put_item = put_item

# DynamoDB: a table Query reads its partition. moto walks and sorts every item of the table.
_partition = threading.local()
_all_items = Table.all_items


def all_items(self):
    hash_key = getattr(_partition, "hash_key", None)
    if hash_key is None or not self.range_key_attr:
        return _all_items(self)
    return sorted(self.items.get(hash_key, {}).values(), key=lambda item: item.range_key)


_query = Table.query


def query(self, hash_key, *args, **kwargs):
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    _partition.hash_key = None if index_name else hash_key
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        _partition.hash_key = None


Table.query = query

# SQS: sending or receiving one message does not count the queue. moto builds every queue
# attribute, the three message counts included (each a walk of the whole queue), to read one
# setting on each SendMessage and on each message received. The counts are not read there.
_uncounted = threading.local()


def _skipping_counts(method):
    def wrapper(*args, **kwargs):
        _uncounted.on = True
        try:
            return method(*args, **kwargs)
        finally:
            _uncounted.on = False

    return wrapper


def _count_unless_skipped(prop):
    def getter(self):
        return 0 if getattr(_uncounted, "on", False) else prop.fget(self)

    return property(getter)


for _name in (
    "approximate_number_of_messages",
    "approximate_number_of_messages_not_visible",
    "approximate_number_of_messages_delayed",
):
    setattr(Queue, _name, _count_unless_skipped(getattr(Queue, _name)))
SQSBackend.send_message = _skipping_counts(SQSBackend.send_message)
SQSBackend.is_message_valid_based_on_retention_period = _skipping_counts(
    SQSBackend.is_message_valid_based_on_retention_period
)

# Speed, not behaviour: each request, moto found the service's app by listing its own package
# directory (about 150 system calls) and matching the host against 180 URL patterns, and listed
# the handler class's methods through `inspect`. The answers are fixed for the server's life.
import moto.core.responses  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: E402

_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_backends = {}


def get_backend_for_host(self, host):
    # Called under the dispatcher's own lock.
    if host not in _backends:
        _backends[host] = _backend_for_host(self, host)
    return _backends[host]


DomainDispatcherApplication.get_backend_for_host = get_backend_for_host
moto.core.responses.method_names_from_class = functools.lru_cache(maxsize=None)(
    moto.core.responses.method_names_from_class
)

app = DomainDispatcherApplication(create_backend_app)


def worker_app():
    """Runs in granian's worker, forked from this process: it dies with its parent, so stopping
    the server (xtask kills this process) never leaves a worker holding the port."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
    return app


from granian.constants import Interfaces  # noqa: E402
from granian.server import Server  # noqa: E402

arguments = argparse.ArgumentParser()
arguments.add_argument("-H", "--host", default="127.0.0.1")
arguments.add_argument("-p", "--port", type=int, required=True)
options = arguments.parse_args(sys.argv[1:])
parent = os.getpid()
# The worker must be forked: it takes `app`, patches included, from this process's memory, which a
# spawned interpreter would not have (Python 3.14 no longer forks by default).
multiprocessing.set_start_method("fork")
# One worker process: moto keeps its state in memory. Its threads serve requests one at a time
# under the GIL, but long polls (ReceiveMessage waits) and many clients need threads to wait on.
Server(
    "moto",
    address=options.host,
    port=options.port,
    interface=Interfaces.WSGI,
    workers=1,
    blocking_threads=64,
    log_enabled=False,
).serve(target_loader=worker_app, wrap_loader=False)
