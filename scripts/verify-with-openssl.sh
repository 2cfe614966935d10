#!/usr/bin/env bash
# Verify an evidence vault (or an unzipped export bundle) with coreutils, sed and openssl only —
# no evidence-agent code. What it checks and what it leaves out: docs/evidence-format.md, "Checking by hand".
#
# Usage: scripts/verify-with-openssl.sh [--tsa-ca TSA_ROOT.pem] [--partial] VAULT_DIR [WITNESS.note ...]
#   --tsa-ca   also verify every log/anchors/*-tsa.json token with `openssl ts -verify` against this root
#   --partial  the folder is an export of a time range: the chain need not start at seq 0 (head not checked)
#   WITNESS    checkpoint notes held elsewhere (e.g. fetched from the customs ledger): checked like log/ ones
#
# Records: signature (ECDSA P-256/SHA-256) by the device certificate's key, key id, media SHA-256 and size,
# sequence continuity, hash chain, and that the chain starts at seq 0 with the genesis prev (64 zeros).
# Checkpoints (log/checkpoints/*.note and WITNESS notes): C2SP signed-note signature by the device key, origin
# names the device; the newest one's tree size must not exceed the records (else the tail was deleted) and its
# Merkle root (RFC 9162) must equal the root recomputed from the records. TSA tokens: note_sha256 = SHA-256 of
# the note file, and with --tsa-ca the RFC 3161 token verifies over the whole note file.
set -euo pipefail
tsa_ca=""; partial=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tsa-ca) tsa_ca=${2:?--tsa-ca needs a file}; shift 2 ;;
    --partial) partial=1; shift ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) break ;;
  esac
done
vault=${1:?usage: $0 [--tsa-ca FILE] [--partial] VAULT_DIR [WITNESS.note ...]}; shift
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fail=0; n=0; prev_hash=""; prev_seq=""; first_seq=""
GENESIS=0000000000000000000000000000000000000000000000000000000000000000
declare -a leaf=()

openssl verify -CAfile "$vault/device/chain.pem" "$vault/device/cert.pem" >/dev/null \
  || { echo "FAIL device certificate is not issued by device/chain.pem"; fail=1; }
openssl x509 -in "$vault/device/cert.pem" -pubkey -noout > "$work/pub.pem"
key_id=$(openssl pkey -pubin -in "$work/pub.pem" -outform DER | sha256sum | cut -d' ' -f1)

field() { # field NAME FILE -> value of the first "NAME":"..." or "NAME": 123 in FILE (a space may follow ':')
  sed -E -n "s/.*\"$1\": ?\"?([^\",}]*)\"?[,}].*/\1/p" "$2" | head -n1
}
hex2bin() { printf '%b' "$(sed 's/../\\x&/g' <<<"$1")"; }

while IFS= read -r rec; do
  n=$((n + 1))
  head -n1 "$rec" | tr -d '\n' > "$work/body.json"          # the exact signed bytes
  sed -n 2p "$rec" | sed -E 's/.*"sig":"([^"]+)".*/\1/' | openssl base64 -d -A > "$work/sig.der"
  if ! openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/sig.der" "$work/body.json" >/dev/null; then
    echo "FAIL $rec: bad signature"; fail=1
  fi
  [ "$(field key_id "$work/body.json")" = "$key_id" ] || { echo "FAIL $rec: key id differs"; fail=1; }
  # top-level seq and prev: keys are sorted, so the top-level one is the last occurrence on the line
  seq=$(grep -o '"seq":[0-9]*' "$work/body.json" | tail -n1 | cut -d: -f2)
  prev=$(grep -o '"prev":"[0-9a-f]*"' "$work/body.json" | tail -n1 | cut -d'"' -f4)
  if [ -z "$prev_seq" ]; then
    first_seq=$seq
    if [ "$partial" = 0 ] && { [ "$seq" != 0 ] || [ "$prev" != "$GENESIS" ]; }; then
      echo "FAIL $rec: the chain starts at seq $seq, not at seq 0 with the genesis prev (head deleted?)"; fail=1
    fi
  else
    [ "$seq" -eq $((prev_seq + 1)) ] || { echo "FAIL $rec: seq $seq follows $prev_seq"; fail=1; }
    [ "$prev" = "$prev_hash" ] || { echo "FAIL $rec: chain link broken"; fail=1; }
  fi
  grep -o '"media":{[^}]*}' "$work/body.json" > "$work/media.json" || true
  if [ -s "$work/media.json" ]; then
    media="$(dirname "$rec")/$(field name "$work/media.json")"
    want=$(field sha256 "$work/media.json"); size=$(field size "$work/media.json")
    got=$(sha256sum "$media" 2>/dev/null | cut -d' ' -f1 || true)
    [ "$got" = "$want" ] && [ "$(stat -c %s "$media")" = "$size" ] \
      || { echo "FAIL $rec: media $media does not match"; fail=1; }
  fi
  leaf[seq]=$({ printf '\x00'; cat "$work/body.json"; } | sha256sum | cut -d' ' -f1)   # RFC 9162 leaf hash
  prev_hash=$(sha256sum "$work/body.json" | cut -d' ' -f1); prev_seq=$seq
done < <(find "$vault/items" -name '*.rec' | sort)
[ "$n" -gt 0 ] || { echo "FAIL no records under $vault/items"; fail=1; }

mth() { # mth START COUNT -> RFC 9162 Merkle tree hash (hex) of leaf[START..START+COUNT-1]
  local start=$1 count=$2 k=1
  if [ "$count" -eq 1 ]; then echo "${leaf[start]:?missing leaf $start}"; return; fi
  while [ $((k * 2)) -lt "$count" ]; do k=$((k * 2)); done
  local left right
  left=$(mth "$start" "$k"); right=$(mth $((start + k)) $((count - k)))
  { printf '\x01'; hex2bin "$left"; hex2bin "$right"; } | sha256sum | cut -d' ' -f1
}

# --- checkpoints: C2SP signed notes by the device key -------------------------------------------------
key_hint=${key_id:0:8}   # note key ID = first 4 bytes of SHA-256(SPKI DER) = first 8 hex digits of key_id
device_id=$(sed -n 1p "$(find "$vault/items" -name '*.rec' | sort | head -n1)" | grep -o '"device_id":"[^"]*"' \
  | head -n1 | cut -d'"' -f4)
newest_size=-1; newest_note=""; notes=0
for note in "$vault"/log/checkpoints/*.note "$@"; do
  [ -f "$note" ] || continue
  notes=$((notes + 1))
  cut=$(grep -n '^$' "$note" | tail -n1 | cut -d: -f1 || true)   # the blank line before the signatures
  [ -n "$cut" ] || { echo "FAIL $note: not a signed note (no blank line)"; fail=1; continue; }
  head -n $((cut - 1)) "$note" > "$work/note.txt"                 # signed text, ending in a newline
  origin=$(sed -n 1p "$work/note.txt"); size=$(sed -n 2p "$work/note.txt"); root=$(sed -n 3p "$work/note.txt")
  [ "${origin##*/}" = "$device_id" ] || { echo "FAIL $note: origin $origin does not name device $device_id"; fail=1; }
  ok=0
  while IFS= read -r line; do
    name=$(cut -d' ' -f2 <<<"$line"); b64=$(cut -d' ' -f3 <<<"$line")
    [ "$name" = "$origin" ] || continue
    openssl base64 -d -A <<<"$b64" > "$work/nsig.bin"
    [ "$(head -c4 "$work/nsig.bin" | od -An -tx1 | tr -d ' \n')" = "$key_hint" ] || continue
    tail -c +5 "$work/nsig.bin" > "$work/nsig.der"
    openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/nsig.der" "$work/note.txt" >/dev/null && ok=1
  done < <(tail -n +$((cut + 1)) "$note")
  [ "$ok" = 1 ] || { echo "FAIL $note: no valid signature by the device key (note edited or forged)"; fail=1; continue; }
  if [ "$size" -gt "$newest_size" ]; then newest_size=$size; newest_note=$note; newest_root=$root; fi
done
if [ "$newest_size" -ge 0 ]; then
  last=${prev_seq:--1}
  missing=0
  for ((i = 0; i < newest_size && i <= last; i++)); do [ -n "${leaf[i]:-}" ] || missing=$((missing + 1)); done
  if [ "$newest_size" -gt $((last + 1)) ]; then
    echo "FAIL $newest_note covers seq 0..$((newest_size - 1)) but the last record is seq $last (tail deleted)"; fail=1
  elif [ "$partial" = 1 ] && [ "$first_seq" != 0 ]; then
    echo "NOTE partial export from seq $first_seq: Merkle roots not recomputed (evidence-agent verify uses log/proofs.json)"
  elif [ "$missing" -gt 0 ]; then
    echo "FAIL $newest_note: $missing of the records seq 0..$((newest_size - 1)) it covers are missing"; fail=1
  elif [ "$newest_size" -gt 0 ]; then
    got=$(hex2bin "$(mth 0 "$newest_size")" | openssl base64 -A)
    [ "$got" = "$newest_root" ] \
      || { echo "FAIL $newest_note: Merkle root differs from the records seq 0..$((newest_size - 1))"; fail=1; }
  fi
else
  echo "NOTE no checkpoint notes: deleting the newest items cannot be detected (see docs/anchoring.md)"
fi

# --- TSA tokens over checkpoint notes ------------------------------------------------------------------
tokens=0; checked=0
for tj in "$vault"/log/anchors/*-tsa.json; do
  [ -f "$tj" ] || continue
  tokens=$((tokens + 1))
  note="$vault/log/checkpoints/$(basename "$tj" -tsa.json).note"
  [ -f "$note" ] || { echo "FAIL $tj: its note $note is missing"; fail=1; continue; }
  [ "$(sha256sum "$note" | cut -d' ' -f1)" = "$(field note_sha256 "$tj")" ] \
    || { echo "FAIL $tj: note_sha256 does not match $note"; fail=1; }
  if [ -n "$tsa_ca" ]; then
    field token "$tj" | openssl base64 -d -A > "$work/t.tsr"
    if openssl ts -verify -in "$work/t.tsr" -data "$note" -CAfile "$tsa_ca" >/dev/null 2>&1; then
      checked=$((checked + 1))
    else
      echo "FAIL $tj: TSA token does not verify over $note"; fail=1
    fi
  fi
done
[ "$tokens" -gt 0 ] && [ -z "$tsa_ca" ] && echo "NOTE $tokens TSA token(s) not verified: give --tsa-ca TSA_ROOT.pem"

[ "$fail" = 0 ] && echo "OK $n records, $notes checkpoint(s), $checked of $tokens TSA token(s) verified with openssl" \
  || echo "FAILED"
exit "$fail"
