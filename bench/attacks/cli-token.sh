#!/bin/bash
# Issue 14: does the CLI take its token from AVRPC_TOKEN / --token-file? usage: bench/attacks/cli-token.sh [dist root]; loopback only, bounded
D=${1:-$(dirname "$0")/../../dist}
K=$(dirname "$0")/../../test/fixtures/cli.avdl
H=$D/test/fixtures/cli-handlers.js
printf 's3cret\n' > /tmp/cli-probe-token
node $D/src/cli/avrpc.js serve $K $H --port 0 --token s3cret > /tmp/cli-probe-serve.out 2>&1 &
PID=$!
for i in $(seq 1 50); do grep -q listening /tmp/cli-probe-serve.out && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening //p' /tmp/cli-probe-serve.out)
AVRPC_TOKEN=s3cret timeout 20 node $D/src/cli/avrpc.js call $ADDR ping >/dev/null 2>/tmp/cli-probe.err; echo "call with AVRPC_TOKEN: exit $? $(head -c 80 /tmp/cli-probe.err)"
timeout 20 node $D/src/cli/avrpc.js call $ADDR ping --token-file /tmp/cli-probe-token >/dev/null 2>/tmp/cli-probe.err; echo "call --token-file: exit $? $(head -c 80 /tmp/cli-probe.err)"
kill $PID; wait $PID 2>/dev/null
