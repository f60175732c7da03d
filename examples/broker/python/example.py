"""The original project's sample producer and consumer, on the Trellis broker.

    python3 example.py consumer --codec xml --topic /weather          # prints (topic, value)
    python3 example.py producer --codec pickle --topic /weather/temperature --count 5

The broker address comes from --host/--port (or $TRELLIS_BROKER_HOST/PORT, default localhost:7000).
"""
import argparse
import random
import time

from trellis_broker import CONSUMER, PRODUCER, JSONQueue, PickleQueue, XMLQueue

QUEUES = {"json": JSONQueue, "xml": XMLQueue, "pickle": PickleQueue}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["producer", "consumer"])
    parser.add_argument("--codec", choices=sorted(QUEUES), default="json")
    parser.add_argument("--topic", default="/temp")
    parser.add_argument("--count", type=int, default=0, help="stop after N messages (0 = forever)")
    parser.add_argument("--interval", type=float, default=1.0, help="producer: seconds between messages")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()

    queue_class = QUEUES[args.codec]
    n = 0
    if args.role == "producer":
        queue = queue_class(args.topic, _type=PRODUCER, host=args.host, port=args.port)
        while args.count == 0 or n < args.count:
            value = {"celsius": round(random.uniform(10, 30), 1), "seq": n}
            queue.push(value, ack=True)
            print("pushed", value, flush=True)
            n += 1
            if args.count == 0 or n < args.count:
                time.sleep(args.interval)
    else:
        queue = queue_class(args.topic, _type=CONSUMER, host=args.host, port=args.port)
        queue.list_topics(lambda topics: print("topics", topics, flush=True))
        while args.count == 0 or n < args.count:
            print(queue.pull(), flush=True)
            n += 1
        queue.cancel()
    queue.close()


if __name__ == "__main__":
    main()
