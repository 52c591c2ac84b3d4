#!/bin/sh
# Starts nginx with nchan for the benchmark: one worker, a generated nginx.conf in a temporary directory,
# listening on 127.0.0.1:$1. Prints "<pid> <dir>" once it answers. Stop it with `kill <pid>`; remove <dir>.
#   /sub/{channel}  nchan WebSocket subscriber
#   /pub/{channel}  nchan publisher (POST; 201/202 once the message is in its store)
# nchan_store_messages off: like pushgate, a message goes to the subscribers present and is not kept.
set -eu
port=$1
dir=$(mktemp -d /tmp/pgbench-nchan-XXXXXX)
mkdir -p "$dir/logs"
module=/usr/lib/nginx/modules/ngx_nchan_module.so
cat > "$dir/nginx.conf" <<CONF
load_module $module;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
daemon off;
events { worker_connections 19000; use epoll; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$port reuseport backlog=4096;
        location ~ ^/sub/(.+)\$ { nchan_subscriber websocket; nchan_channel_id \$1; }
        location ~ ^/pub/(.+)\$ { nchan_publisher; nchan_channel_id \$1; nchan_store_messages off; }
    }
}
CONF
nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
pid=$!
i=0
until curl -s -o /dev/null "http://127.0.0.1:$port/pub/ping" -X POST -d x 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then
        cat "$dir/logs/error.log" "$dir/logs/stdout.log" >&2
        exit 1
    fi
    sleep 0.05
done
echo "$pid $dir"
