#!/bin/sh
# Makes throwaway certificates for the TLS examples, with the openssl CLI:
#   DIR/ca.pem                       a CA ("feersum-ts example CA")
#   DIR/server.pem, server-key.pem   CN=localhost (SAN localhost, 127.0.0.1), signed by the CA
#   DIR/client.pem, client-key.pem   a client certificate, CN=alice, signed by the CA
# Usage: sh examples/make-certs.sh [DIR]     (default: examples/certs)
set -eu
dir=${1:-$(dirname "$0")/certs}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=feersum-ts example CA' \
  -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout server-key.pem -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
  -extfile server.ext -out server.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj '/O=Example/CN=alice' -keyout client-key.pem -out client.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
  -extfile client.ext -out client.pem 2>/dev/null
rm -f server.csr client.csr server.ext client.ext ca.srl
echo "certificates in $(pwd)"
