"""moto_server, patched where our tests need it to behave as AWS does (see xtask/src/moto.rs).

Run as: python -c "$(cat moto_server.py)" -H 127.0.0.1 -p PORT
"""
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

from moto.server import main  # noqa: E402

main(sys.argv[1:])
