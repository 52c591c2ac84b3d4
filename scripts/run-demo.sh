#!/usr/bin/env bash
# Installs what is missing, builds pushgate, then runs a loopback Mosquitto (with the pushgate_auth plugin)
# and pushgate with the demo apps of conf/pushgate.conf. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2

mkdir -p var
chmod 700 var
# Fresh broker credentials for the gateway and an operator account on every run; never committed.
gw_pw=$(openssl rand -hex 16)
op_pw=$(openssl rand -hex 8)
admin_pw=$(openssl rand -hex 12)
rm -f var/mosquitto.passwd
mosquitto_passwd -b -c var/mosquitto.passwd pushgate "$gw_pw" 2>/dev/null
mosquitto_passwd -b var/mosquitto.passwd operator "$op_pw" 2>/dev/null
chmod 600 var/mosquitto.passwd

if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    echo "run-demo: port 1883 is in use (a system mosquitto?). Stop it first: service mosquitto stop" >&2
    exit 1
fi

mosquitto -c conf/mosquitto.conf &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break
    kill -0 $broker 2>/dev/null || { echo "run-demo: mosquitto failed to start" >&2; exit 1; }
    sleep 0.1
done

cat <<MSG

  pushgate demo
  -------------
  chat page:   http://127.0.0.1:8080/demo   (open it in two tabs)
  REST:        curl -X POST -H 'Content-Type: application/json' -d '{"name":"curl","text":"hi"}' \\
                    http://127.0.0.1:8080/demo/main/publish
  device:      mosquitto_sub -h 127.0.0.1 -u demo -i device-1 -t 'pushgate/demo/c/#' -v
               mosquitto_pub -h 127.0.0.1 -u demo -i device-2 -t pushgate/demo/c/main -m 'hello from MQTT'
  operator:    mosquitto_sub -h 127.0.0.1 -u operator -P $op_pw -v -t 'pushgate/#'
  admin API:   curl --data "app[name]=foo-app" http://admin:$admin_pw@127.0.0.1:8080/api/admin/apps
  dashboard:   http://127.0.0.1:8080/dashboard/demo   (user admin, password $admin_pw)

MSG

PUSHGATE_BROKER_PASSWORD="$gw_pw" PUSHGATE_ADMIN_PASSWORD="$admin_pw" ./build/gateway/pushgate --config conf/pushgate.conf
