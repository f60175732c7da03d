#!/usr/bin/env python3
"""Generates pickle test vectors with the machine's real CPython.

Run from this folder: python3 make-vectors.py  (writes vectors.json)

Each vector holds the pickle bytes (hex) and, for accepted ones, the value Trellis must decode,
in tagged JSON: {"$bytes": hex}, {"$int": "digits"} for ints beyond 2**53, {"$float": "nan"|"inf"|"-inf"}.
Tuples, sets and frozensets are expected as lists in pickling order. Refused vectors name the
first opcode that imports or calls, which the decoder must report.
"""
import json
import math
import os
import pickle
import pickletools
import sys

FORBIDDEN = {'GLOBAL', 'STACK_GLOBAL', 'REDUCE', 'INST', 'OBJ', 'NEWOBJ', 'NEWOBJ_EX', 'BUILD',
             'PERSID', 'BINPERSID', 'EXT1', 'EXT2', 'EXT4'}
SAFE = 2 ** 53 - 1


def tagged(v):
    """The expected decoded value, as tagged JSON."""
    if v is None or isinstance(v, bool) or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if -SAFE <= v <= SAFE else {'$int': str(v)}
    if isinstance(v, float):
        if math.isnan(v):
            return {'$float': 'nan'}
        if math.isinf(v):
            return {'$float': 'inf' if v > 0 else '-inf'}
        return v
    if isinstance(v, (bytes, bytearray)):
        return {'$bytes': bytes(v).hex()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [tagged(x) for x in v]
    if isinstance(v, dict):
        return {str(k): tagged(x) for k, x in v.items()}
    raise TypeError(type(v))


def first_forbidden(data):
    for op, _arg, _pos in pickletools.genops(data):
        if op.name in FORBIDDEN:
            return op.name
    return None


shared = [1, 2]
VALUES = {
    'none': None, 'true': True, 'false': False,
    'zero': 0, 'one': 1, 'minus-one': -1, 'u8-max': 255, 'u16-min': 256, 'u16-max': 65535,
    'i32-big': 65536, 'i32-min': -2 ** 31, 'i32-max': 2 ** 31 - 1, 'i32-over': 2 ** 31,
    'safe-max': SAFE, 'safe-min': -SAFE, 'two-53': 2 ** 53, 'minus-two-53': -2 ** 53,
    'two-64': 2 ** 64, 'minus-two-100': -2 ** 100, 'ten-40': 10 ** 40, 'two-2100': 2 ** 2100,
    'float': 1.5, 'float-neg': -2.25, 'float-small': 5e-324, 'float-big': 1e300, 'float-integral': 3.0,
    'nan': float('nan'), 'inf': float('inf'), 'minus-inf': float('-inf'),
    'empty-str': '', 'ascii': 'hello', 'unicode': 'h\u00e9llo \u2713 \U0001d11e \u65e5\u672c',
    'escapes': 'line\nbreak \\ back \'q\' "dq" \t tab \x00 nul',
    'long-str': 'abc' * 100, 'huge-str': 'x\u00e9' * 22000,
    'empty-list': [], 'list': [1, 2, 3], 'mixed-list': [None, True, 1.5, 'a', [1, [2, [3]]]],
    'empty-tuple': (), 'tuple1': (1,), 'tuple2': ('localhost', 5000), 'tuple3': (1, 2, 3), 'tuple4': (1, 2, 3, 4),
    'empty-dict': {}, 'dict': {'a': 1, 'b': [1, 2], 'c': {'d': None}},
    'int-keys': {1: 'one', 2: 'two'},
    'shared-refs': [shared, shared, {'x': shared}],
    'long-list': list(range(1100)),
    'long-dict': {f'k{i}': i for i in range(1100)},
    'deep': [[[[[[[[[[[[[[[[['deep']]]]]]]]]]]]]]]]],
    'dht-join': {'method': 'JOIN_REQ', 'args': {'addr': ('localhost', 5000), 'id': 770}},
    'dht-put': {'method': 'PUT', 'args': {'key': 'A', 'value': [0, 1, 2], 'from': ('localhost', 4000)}},
    'broker-msg': {'topic': '/weather/temperature', 'value': {'celsius': 21.5, 'station': 'Aveiro', 'ok': True}},
    'bytes': b'\x00\x01\xfe\xff', 'empty-bytes': b'', 'long-bytes': bytes(range(256)) * 20, 'huge-bytes': bytes(range(256)) * 260,
    'bytes-in-dict': {'payload': b'abc'},
    'bytearray': bytearray(b'\x10\x20'),
    'set': {1, 2, 3}, 'frozenset': frozenset({'a'}), 'empty-set': set(),
}


class Exploit:
    def __reduce__(self):
        return (os.system, ('touch /tmp/trellis-pickle-pwned',))


def main():
    accepted, refused = [], []
    for name, value in VALUES.items():
        # Values over 64 KiB (several protocol 4 frames) only where framing exists.
        for proto in range(4 if name.startswith('huge') else 0, pickle.HIGHEST_PROTOCOL + 1):
            data = pickle.dumps(value, protocol=proto)
            forbidden = first_forbidden(data)
            entry = {'name': f'{name}/p{proto}', 'protocol': proto, 'hex': data.hex()}
            if forbidden:
                refused.append({**entry, 'opcode': forbidden})
            else:
                accepted.append({**entry, 'value': tagged(value)})
    # Python 2 era opcodes Python 3 never writes: decoded by Python itself to get the expectation.
    handmade = {
        'STRING': b"S'abc'\n.", 'STRING-escapes': b"S'a\\n\\x41\\101\\\\\\''\n.", 'STRING-dq': b'S"it\'s"\n.',
        'SHORT_BINSTRING': b'U\x03abc.', 'BINSTRING': b'T\x03\x00\x00\x00abc.',
        'LONG-py2': b'L12345678901234567890L\n.', 'LONG-small': b'L5L\n.', 'INT-true': b'I01\n.',
        'INT-false': b'I00\n.', 'INT-neg': b'I-42\n.', 'FLOAT-text': b'F1.25\n.',
        'memo-text': b'(lp0\nI1\na(lp1\nI2\naag1\na.', 'POP_MARK': b'(I1\nI2\n1N.', 'POP': b'I1\n0N.', 'DUP': b']2a.',
        'dict-DICT': b'(S\'k\'\nI1\nd.', 'LIST-TUPLE': b'((I1\nI2\nl(I3\ntt.',
        'READONLY_BUFFER': b'\x80\x05C\x02ab\x98.',
    }
    for name, data in handmade.items():
        if name == 'DUP':  # a list that contains itself: outside the value model
            refused.append({'name': name, 'protocol': 0, 'hex': data.hex(), 'opcode': 'cyclic'})
            continue
        value = pickle.loads(data)
        accepted.append({'name': name, 'protocol': 0 if data[0] != 0x80 else data[1], 'hex': data.hex(), 'value': tagged(value)})
    for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps(Exploit(), protocol=proto)
        refused.append({'name': f'os.system/p{proto}', 'protocol': proto, 'hex': data.hex(), 'opcode': first_forbidden(data)})
    out = {
        'generator': 'make-vectors.py',
        'python': sys.version.split()[0],
        'accepted': accepted,
        'refused': refused,
    }
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'vectors.json'), 'w') as f:
        json.dump(out, f, indent=0)
        f.write('\n')
    print(f'{len(accepted)} accepted, {len(refused)} refused vectors (Python {out["python"]})')


if __name__ == '__main__':
    main()
