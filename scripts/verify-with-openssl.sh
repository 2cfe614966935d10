#!/usr/bin/env bash
# Verify an evidence vault (or an unzipped export bundle) with coreutils, sed and openssl only —
# no evidence-agent code. Usage: scripts/verify-with-openssl.sh VAULT_DIR
# Checks for every record: signature (ECDSA P-256 / SHA-256) by the device certificate's key,
# key id = SHA-256 of the certificate's public key, media SHA-256 and size, sequence continuity
# and the hash chain; and that the device certificate was issued by the CA in device/chain.pem.
set -euo pipefail
vault=${1:?usage: $0 VAULT_DIR}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fail=0; n=0; prev_hash=""; prev_seq=""

openssl verify -CAfile "$vault/device/chain.pem" "$vault/device/cert.pem" >/dev/null \
  || { echo "FAIL device certificate is not issued by device/chain.pem"; fail=1; }
openssl x509 -in "$vault/device/cert.pem" -pubkey -noout > "$work/pub.pem"
key_id=$(openssl pkey -pubin -in "$work/pub.pem" -outform DER | sha256sum | cut -d' ' -f1)

field() { # field NAME FILE -> value of the first "NAME":"..." or "NAME":123 in FILE
  sed -E -n "s/.*\"$1\":\"?([^\",}]*)\"?[,}].*/\1/p" "$2" | head -n1
}

while IFS= read -r rec; do
  n=$((n + 1))
  head -n1 "$rec" | tr -d '\n' > "$work/body.json"          # the exact signed bytes
  sed -n 2p "$rec" | sed -E 's/.*"sig":"([^"]+)".*/\1/' | openssl base64 -d -A > "$work/sig.der"
  if ! openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/sig.der" "$work/body.json" >/dev/null; then
    echo "FAIL $rec: bad signature"; fail=1
  fi
  [ "$(field key_id "$work/body.json")" = "$key_id" ] || { echo "FAIL $rec: key id differs"; fail=1; }
  seq=$(field seq "$work/body.json")
  prev=$(field prev "$work/body.json")
  if [ -n "$prev_seq" ]; then
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
  prev_hash=$(sha256sum "$work/body.json" | cut -d' ' -f1); prev_seq=$seq
done < <(find "$vault/items" -name '*.rec' | sort)

[ "$fail" = 0 ] && echo "OK $n records verified with openssl" || echo "FAILED"
exit "$fail"
