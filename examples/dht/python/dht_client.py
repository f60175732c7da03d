#!/usr/bin/env python3
"""A client of the original Chord DHT protocol, written from REFERENCE.md section 3.

Each request is one pickled dict {"method": NAME, "args": ...} sent over UDP from the client's
own socket to any node; the node (or the owner it forwards to, using "from") answers with one
datagram on that socket: {"method": "ACK"}, {"method": "ACK", "args": value} or
{"method": "NACK"}. Only the Python standard library is used.

Usage: dht_client.py HOST PORT put KEY JSON_VALUE | get KEY | info
"""
import json
import pickle
import socket
import sys


class DHTClient:
    def __init__(self, dht_address, timeout=5.0):
        self.dht_address = dht_address
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.settimeout(timeout)

    def _request(self, msg):
        self.socket.sendto(pickle.dumps(msg), self.dht_address)
        data, _ = self.socket.recvfrom(65535)
        return pickle.loads(data)

    def put(self, key, value):
        reply = self._request({"method": "PUT", "args": {"key": key, "value": value}})
        return reply["method"] == "ACK"

    def get(self, key):
        reply = self._request({"method": "GET", "args": {"key": key}})
        if reply["method"] == "ACK":
            return reply["args"]
        return None

    def info(self):
        reply = self._request({"method": "INFO"})
        return reply.get("args")

    def close(self):
        self.socket.close()


def main(argv):
    if len(argv) < 4:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    client = DHTClient((argv[1], int(argv[2])))
    try:
        command = argv[3]
        if command == "put" and len(argv) == 6:
            print(json.dumps(client.put(argv[4], json.loads(argv[5]))))
        elif command == "get" and len(argv) == 5:
            print(json.dumps(client.get(argv[4])))
        elif command == "info" and len(argv) == 4:
            print(json.dumps(client.info()))
        else:
            print("unknown command", file=sys.stderr)
            return 2
    except socket.timeout:
        print("timeout", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
