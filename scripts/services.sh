#!/usr/bin/env bash
# Makes sure the loopback services the tests use answer, starting any that do not.
set -uo pipefail

answers() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

wait_for() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do answers "$port" && return 0; sleep 1; done
  echo "$name did not come up on 127.0.0.1:$port" >&2
  return 1
}

if ! answers 5432; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_for 5432 PostgreSQL
fi
if ! answers 6379; then
  echo "starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for 6379 Redis
fi
if ! answers 5672; then
  echo "starting RabbitMQ" >&2
  rabbitmq-server -detached
  wait_for 5672 RabbitMQ
fi
# The tunnel tests run a real sshd on loopback with their own keys and config; only the binary is needed.
if [ ! -x /usr/sbin/sshd ]; then
  echo "installing openssh-server (for the ssh tunnel tests)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server >/dev/null || echo "could not install sshd" >&2
fi
# The browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (for the web UI's browser tests)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || echo "could not install chromium" >&2
fi
exit 0
