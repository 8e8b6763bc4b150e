#!/usr/bin/env bash
# The demo with ZooKeeper: starts a private ZooKeeper, two providers of the example services
# registered in it, and a consumer that finds them there; shows the calls spread over both;
# stops one provider and shows the consumer carry on. Cleans up everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p mprpc-examples
bin=target/debug
scripts/zk.sh install
work=$(mktemp -d)
pids=()
zk_dir=""
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$zk_dir" ] && scripts/zk.sh stop "$zk_dir" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== starting ZooKeeper =="
eval "$(scripts/zk.sh start)"
zk_dir=$ZK_DIR
echo "ZooKeeper at $ZK_CONNECT"

echo "== starting two providers registered in ZooKeeper =="
for i in 1 2; do
    "$bin/provider" -i examples/config/zk-provider.toml --zk "$ZK_CONNECT" >"$work/p$i.out" 2>"$work/p$i.log" &
    pids+=($!)
done
for i in 1 2; do
    for _ in $(seq 200); do grep -q "provider listening" "$work/p$i.out" && break; sleep 0.05; done
    echo "provider $i: $(grep "provider listening" "$work/p$i.out")"
done

served() { grep -c "GetFriendsList" "$work/p$1.log" || true; }

echo "== a consumer makes 20 calls =="
"$bin/consumer" -i examples/config/zk-consumer.toml --zk "$ZK_CONNECT" --calls 20 | tail -n 1
echo "provider 1 served $(served 1) GetFriendsList calls, provider 2 served $(served 2)"

echo "== stopping provider 1 (SIGTERM: it leaves ZooKeeper, then drains) =="
kill -TERM "${pids[0]}"
wait "${pids[0]}" || true
before=$(served 2)
echo "== the consumer carries on with provider 2 =="
"$bin/consumer" -i examples/config/zk-consumer.toml --zk "$ZK_CONNECT" --calls 20 | tail -n 1
echo "provider 2 served $(( $(served 2) - before )) GetFriendsList calls this time (the consumer's usual one, and 20 more)"
