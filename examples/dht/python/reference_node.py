#!/usr/bin/env python3
"""A node of the original Chord DHT protocol, written independently from REFERENCE.md section 3.

It exists to check that Trellis nodes in `--wire reference` mode and nodes of an original
implementation form one ring. Only the Python standard library (socket + pickle) is used.

The protocol, as the original defines it: UDP, one pickled dict {"method": NAME, "args": ...}
per datagram; ids are FNV-1a of Python's tuple repr of the address, mod 2**m; a node owns
(predecessor, self]. JOIN_REQ {addr, id} is answered by the node whose (self, successor]
holds the id with JOIN_REP {successor_id, successor_addr} (and that node links the joiner as its
successor); NOTIFY {predecessor_id, predecessor_addr}; PREDECESSOR is answered with STABILIZE
whose args are the predecessor id alone; SUCCESSOR {id, from} -> SUCCESSOR_REP {req_id,
successor_id, successor_addr}; PUT/GET {key[, value][, from]} -> ACK / ACK value / NACK, sent to
"from" (the client) by the owner. Stabilize runs when the socket read times out, as the original,
and a STABILIZE answer naming a node between us and our successor adopts that id with the
address the answer came from (the original's flaw, kept on purpose).

One addition that the original does not have, for tests only: DEBUG_STATE answers
{"method": "ACK", "args": {id, addr, predecessor_id, successor_id, successor_addr, keys}}.

Usage: reference_node.py PORT|0 [JOIN_PORT] [--host localhost] [--bits 10] [--timeout 0.2]
Prints one JSON line {"id": ..., "port": ...} once bound (and joined), then serves until killed.
"""
import argparse
import json
import pickle
import signal
import socket
import sys


def dht_hash(text, bits):
    h = 2166136261
    for c in text:
        h = ((h ^ ord(c)) * 16777619)
    return h % (2 ** bits)


def contains(begin, end, x):
    """x in the ring interval (begin, end]; wraps past 0 when begin >= end."""
    if begin < end:
        return begin < x <= end
    return begin < x or x <= end


class FingerTable:
    def __init__(self, node_id, node_addr, bits):
        self.node_id = node_id
        self.bits = bits
        self.size = 2 ** bits
        self.table = [(node_id, node_addr) for _ in range(bits)]

    def start(self, i):
        return (self.node_id + 2 ** (i - 1)) % self.size

    def fill(self, node_id, node_addr):
        self.table = [(node_id, node_addr) for _ in range(self.bits)]

    def update(self, i, node_id, node_addr):
        self.table[i - 1] = (node_id, node_addr)

    def find(self, identification):
        """Closest preceding node: the highest entry strictly inside (n, id); none -> entry 1."""
        for i in range(self.bits, 0, -1):
            nid, naddr = self.table[i - 1]
            if nid != identification and contains(self.node_id, identification, nid) and nid != self.node_id:
                return naddr
        return self.table[0][1]

    def refresh(self):
        return [(i, self.start(i), self.table[i - 1][1]) for i in range(1, self.bits + 1)]

    def entries_for(self, req_id):
        return [i for i in range(1, self.bits + 1) if self.start(i) == req_id]


class ReferenceNode:
    def __init__(self, host, port, join_addr, bits, timeout):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", port))  # port 0: any free port, named after the one bound
        self.socket.settimeout(timeout)
        self.addr = (host, self.socket.getsockname()[1])
        self.bits = bits
        self.identification = dht_hash(str(self.addr), bits)
        self.join_addr = join_addr
        self.inside_dht = join_addr is None
        self.successor_id = self.identification
        self.successor_addr = self.addr
        self.predecessor_id = None
        self.predecessor_addr = None
        self.finger_table = FingerTable(self.identification, self.addr, bits)
        self.keystore = {}

    def send(self, address, msg):
        self.socket.sendto(pickle.dumps(msg), address)

    def recv(self):
        try:
            payload, addr = self.socket.recvfrom(65535)
        except socket.timeout:
            return None, None
        return payload, addr

    # -- membership
    def node_join(self, args):
        addr = tuple(args["addr"])
        identification = args["id"]
        if self.identification == self.successor_id:
            # alone: the joiner becomes our successor and we become its
            self.successor_id, self.successor_addr = identification, addr
            self.finger_table.update(1, identification, addr)
            self.send(addr, {"method": "JOIN_REP", "args": {"successor_id": self.identification, "successor_addr": self.addr}})
        elif contains(self.identification, self.successor_id, identification):
            reply = {"successor_id": self.successor_id, "successor_addr": self.successor_addr}
            self.successor_id, self.successor_addr = identification, addr
            self.finger_table.update(1, identification, addr)
            self.send(addr, {"method": "JOIN_REP", "args": reply})
        else:
            self.send(self.successor_addr, {"method": "JOIN_REQ", "args": args})

    def notify(self, args):
        pid = args["predecessor_id"]
        if self.predecessor_id is None or contains(self.predecessor_id, self.identification, pid):
            self.predecessor_id = pid
            self.predecessor_addr = tuple(args["predecessor_addr"])

    def stabilize(self, from_id, addr):
        if from_id is not None and contains(self.identification, self.successor_id, from_id):
            # the original's flaw: the address is the sender's, not the new successor's
            self.successor_id = from_id
            self.successor_addr = addr
            self.finger_table.update(1, from_id, addr)
        self.send(self.successor_addr, {"method": "NOTIFY", "args": {"predecessor_id": self.identification, "predecessor_addr": self.addr}})
        for _, start, _ in self.finger_table.refresh():
            self.send(self.successor_addr, {"method": "SUCCESSOR", "args": {"id": start, "from": self.addr}})

    def get_successor(self, args):
        if contains(self.identification, self.successor_id, args["id"]):
            self.send(tuple(args["from"]), {"method": "SUCCESSOR_REP", "args": {
                "req_id": args["id"], "successor_id": self.successor_id, "successor_addr": self.successor_addr}})
        else:
            self.send(self.finger_table.find(args["id"]), {"method": "SUCCESSOR", "args": {"id": args["id"], "from": args["from"]}})

    # -- keys
    def owns(self, key_hash):
        if self.predecessor_id is None:
            return self.successor_id == self.identification
        return contains(self.predecessor_id, self.identification, key_hash)

    def put(self, key, value, address):
        key_hash = dht_hash(key, self.bits)
        if self.owns(key_hash):
            self.keystore[key] = value
            self.send(address, {"method": "ACK"})
        else:
            self.send(self.finger_table.find(key_hash), {"method": "PUT", "args": {"key": key, "value": value, "from": address}})

    def get(self, key, address):
        key_hash = dht_hash(key, self.bits)
        if self.owns(key_hash):
            if key in self.keystore:
                self.send(address, {"method": "ACK", "args": self.keystore[key]})
            else:
                self.send(address, {"method": "NACK"})
        else:
            self.send(self.finger_table.find(key_hash), {"method": "GET", "args": {"key": key, "from": address}})

    def run(self, ready):
        while not self.inside_dht:
            self.send(self.join_addr, {"method": "JOIN_REQ", "args": {"addr": self.addr, "id": self.identification}})
            payload, _ = self.recv()
            if payload is None:
                continue
            output = pickle.loads(payload)
            if output["method"] == "JOIN_REP":
                args = output["args"]
                self.successor_id = args["successor_id"]
                self.successor_addr = tuple(args["successor_addr"])
                self.finger_table.fill(self.successor_id, self.successor_addr)
                self.inside_dht = True
        ready()
        while True:
            payload, addr = self.recv()
            if payload is None:
                # the socket read timed out: stabilize, as the original does
                self.send(self.successor_addr, {"method": "PREDECESSOR"})
                continue
            try:
                output = pickle.loads(payload)
                self.handle(output, addr)
            except Exception as err:  # a bad datagram must not stop the node
                print(f"dropped a datagram from {addr}: {err!r}", file=sys.stderr)

    def handle(self, output, addr):
        method = output["method"]
        args = output.get("args")
        if method == "JOIN_REQ":
            self.node_join(args)
        elif method == "NOTIFY":
            self.notify(args)
        elif method == "PUT":
            self.put(args["key"], args["value"], tuple(args.get("from", addr)))
        elif method == "GET":
            self.get(args["key"], tuple(args.get("from", addr)))
        elif method == "PREDECESSOR":
            self.send(addr, {"method": "STABILIZE", "args": self.predecessor_id})
        elif method == "STABILIZE":
            self.stabilize(args, addr)
        elif method == "SUCCESSOR":
            self.get_successor(args)
        elif method == "SUCCESSOR_REP":
            for i in self.finger_table.entries_for(args["req_id"]):
                self.finger_table.update(i, args["successor_id"], tuple(args["successor_addr"]))
        elif method == "DEBUG_STATE":
            self.send(addr, {"method": "ACK", "args": {
                "id": self.identification, "addr": self.addr, "predecessor_id": self.predecessor_id,
                "successor_id": self.successor_id, "successor_addr": self.successor_addr, "keys": sorted(self.keystore)}})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("join_port", type=int, nargs="?")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--bits", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=0.2)
    a = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    join = None if a.join_port is None else ("127.0.0.1", a.join_port)
    node = ReferenceNode(a.host, a.port, join, a.bits, a.timeout)
    node.run(lambda: print(json.dumps({"id": node.identification, "port": node.addr[1]}), flush=True))


if __name__ == "__main__":
    main()
