#!/usr/bin/env bash
# certs.sh DIR: a throwaway certificate authority and an ECDSA P-256 server certificate it signed, for
# localhost and 127.0.0.1, valid 90 days, as DIR/ca.pem, DIR/cert.pem (the chain) and DIR/key.pem.
# For local tests and benchmarks only: trust DIR/ca.pem in the client (curl --cacert, testssl.sh --add-ca).
set -euo pipefail
dir=${1:?usage: certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 \
  -keyout ca.key -out ca.pem -subj "/CN=http-server test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout key.pem -out server.csr -subj "/CN=localhost" 2>/dev/null
cat > server.ext <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
# testssl.sh counts a certificate with neither a CRL nor an OCSP address as a finding; nothing fetches it here.
crlDistributionPoints = URI:http://localhost/ca.crl
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 90 \
  -extfile server.ext -out cert.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
echo "$dir/cert.pem $dir/key.pem (trust $dir/ca.pem)"
