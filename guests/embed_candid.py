#!/usr/bin/env python3
"""Embeds a canister's Candid interface in its component, as dfx does on the IC.

    embed_candid.py <component.wasm> <interface.did>
    embed_candid.py --all <canisters dir> <target dir>

Adds the `.did` file as the component-level custom section
`icp:public candid:service` (replacing one embedded before, so running it
twice changes nothing). The replica reads the section at install and
`ww call` uses it to type arguments and name reply fields. It is metadata,
not code: the canister's core module, its memory layout and its behaviour are
untouched. (Embedding it from Rust with a `#[link_section]` static moved the
canister's data and cost ~30% of inter-canister call throughput.)

`--all` does it for every `<canisters dir>/<name>/<name>.did` whose
component is built, in each profile directory under `<target dir>`
(`make guests` runs it on guests/canisters and guests/target/wasm32-wasip2,
so the release and the did builds both carry the interface).
"""

import sys

SECTION = b"icp:public candid:service"


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_leb(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def embed(wasm: bytes, did: bytes) -> bytes:
    if len(wasm) < 8 or wasm[:4] != b"\0asm":
        raise ValueError("not a Wasm binary")
    out = bytearray(wasm[:8])
    at = 8
    while at < len(wasm):
        start = at
        section_id = wasm[at]
        size, body = read_leb(wasm, at + 1)
        end = body + size
        if end > len(wasm):
            raise ValueError("truncated section")
        keep = True
        if section_id == 0:
            name_len, name_at = read_leb(wasm, body)
            keep = wasm[name_at:name_at + name_len] != SECTION
        if keep:
            out += wasm[start:end]
        at = end
    payload = leb(len(SECTION)) + SECTION + did
    out += b"\x00" + leb(len(payload)) + payload
    return bytes(out)


def embed_file(wasm_path: str, did_path: str) -> int:
    try:
        with open(wasm_path, "rb") as f:
            wasm = f.read()
        with open(did_path, "rb") as f:
            did = f.read()
        out = embed(wasm, did)
    except (OSError, ValueError) as e:
        print(f"embed_candid: {wasm_path}: {e}", file=sys.stderr)
        return 1
    if out != wasm:
        with open(wasm_path, "wb") as f:
            f.write(out)
    return 0


def embed_all(canisters: str, target: str) -> int:
    import os
    status = 0
    for name in sorted(os.listdir(canisters)):
        did = os.path.join(canisters, name, f"{name}.did")
        if not os.path.isfile(did):
            continue
        for profile in sorted(os.listdir(target)):
            wasm = os.path.join(target, profile, f"{name}.wasm")
            if os.path.isfile(wasm):
                status |= embed_file(wasm, did)
    return status


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--all":
        return embed_all(sys.argv[2], sys.argv[3])
    if len(sys.argv) != 3:
        print("usage: embed_candid.py <component.wasm> <interface.did> | --all <canisters dir> <target dir>", file=sys.stderr)
        return 2
    return embed_file(sys.argv[1], sys.argv[2])


if __name__ == "__main__":
    sys.exit(main())
