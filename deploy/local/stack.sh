#!/usr/bin/env bash
# tagstream local stack: Apache Kafka (KRaft, jars from Maven Central), Redis and Prometheus
# (Debian packages) as plain processes on loopback. No Docker.
#
#   deploy/local/stack.sh up [kafka|redis|prometheus ...]   start (all by default), wait until ready
#   deploy/local/stack.sh down                                stop what `up` started
#   deploy/local/stack.sh stop kafka|redis|prometheus         stop one service (data kept; `up` restarts it)
#   deploy/local/stack.sh status                              what runs, where the logs are
#   deploy/local/stack.sh resolve                             only resolve and cache the Kafka jars
#
# Settings (environment):
#   TAGSTREAM_STACK_DIR      state, logs and pids        (default: <repo>/.stack)
#   TAGSTREAM_CACHE_DIR      cached Kafka jars            (default: <repo>/.cache)
#   KAFKA_PORT / KAFKA_CONTROLLER_PORT                    (default: 9092 / 9093)
#   KAFKA_PARTITIONS         default partitions of auto-created topics (default: 4)
#   KAFKA_SASL_PORT          also open a SASL_PLAINTEXT listener with SCRAM-SHA-256/512 there
#   KAFKA_SSL_PORT           also open an SSL listener there (self-signed cert for 127.0.0.1,
#                            CA for clients: $TAGSTREAM_STACK_DIR/tls/ca.pem)
#   KAFKA_SCRAM_USER / KAFKA_SCRAM_PASSWORD   its user, created when storage is formatted
#                            (default: tagstream / tagstream-secret)
#   REDIS_PORT                                            (default: 6379)
#   PROMETHEUS_PORT / METRICS_PORT (worker metrics scraped by Prometheus) (default: 9090 / 9464)
#   READY_TIMEOUT_S                                       (default: 90)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
stack_dir=${TAGSTREAM_STACK_DIR:-$repo/.stack}
cache_dir=${TAGSTREAM_CACHE_DIR:-$repo/.cache}
kafka_port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
partitions=${KAFKA_PARTITIONS:-4}
sasl_port=${KAFKA_SASL_PORT:-}
ssl_port=${KAFKA_SSL_PORT:-}
scram_user=${KAFKA_SCRAM_USER:-tagstream}
scram_password=${KAFKA_SCRAM_PASSWORD:-tagstream-secret}
redis_port=${REDIS_PORT:-6379}
prometheus_port=${PROMETHEUS_PORT:-9090}
metrics_port=${METRICS_PORT:-9464}
ready_timeout_s=${READY_TIMEOUT_S:-90}
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$repo/deploy/kafka/pom.xml")
jars_dir=$cache_dir/kafka-$kafka_version

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

need() { # need CMD "how to get it"
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

apt_install() { # apt_install CMD PACKAGE: install a Debian package when its command is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "$1 not found; install the Debian package '$2' (apt-get install $2)"
  log "installing Debian package $2"
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]; then
    apt-get update -qq >/dev/null
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; } ||
    die "could not install $2"
  # Debian starts the packaged service on install; we run our own instance on our own port.
  systemctl disable --now "$2" >/dev/null 2>&1 || service "$2" stop >/dev/null 2>&1 || true
  command -v "$1" >/dev/null 2>&1 || die "$2 installed but $1 still not found"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { # running NAME: true when NAME's pid file names a live process
  local f=$stack_dir/pids/$1.pid
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

wait_for() { # wait_for WHAT LOGFILE CHECK...
  local what=$1 logfile=$2; shift 2
  local deadline=$((SECONDS + ready_timeout_s))
  until "$@"; do
    if ! running "$what"; then
      tail -n 30 "$logfile" >&2 || true
      die "$what exited during start-up; log: $logfile"
    fi
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$logfile" >&2 || true; die "$what not ready after ${ready_timeout_s}s; log: $logfile"; }
    sleep 0.3
  done
}

resolve_kafka() {
  need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
  if [ -f "$jars_dir/.complete" ]; then return 0; fi
  need mvn "install Apache Maven (Debian: apt-get install maven); it resolves the Kafka jars from Maven Central"
  log "resolving Apache Kafka $kafka_version from Maven Central into $jars_dir (once)"
  rm -rf "$jars_dir"; mkdir -p "$jars_dir"
  mvn -q -B -f "$repo/deploy/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$jars_dir" >"$cache_dir/mvn-kafka.log" 2>&1 ||
    { tail -n 30 "$cache_dir/mvn-kafka.log" >&2; die "maven could not resolve Kafka $kafka_version (log: $cache_dir/mvn-kafka.log)"; }
  touch "$jars_dir/.complete"
}

make_tls() { # a self-signed certificate for 127.0.0.1 (local stack and tests only)
  local d=$stack_dir/tls
  [ -f "$d/kafka.p12" ] && return 0
  need openssl "install openssl (Debian: apt-get install openssl)"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/key.pem" -out "$d/ca.pem" -days 365 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" >/dev/null 2>&1 ||
    die "openssl could not make a certificate"
  cp "$d/ca.pem" "$d/cert.pem"
  openssl pkcs12 -export -in "$d/cert.pem" -inkey "$d/key.pem" -out "$d/kafka.p12" -name kafka \
    -passout pass:tagstream-local || die "openssl could not make the Kafka keystore"
}

kafka_ready() { grep -q "Kafka Server started" "$stack_dir/logs/kafka.log" 2>/dev/null && port_open "$kafka_port"; }

start_kafka() {
  if running kafka; then log "kafka already running on 127.0.0.1:$kafka_port"; return 0; fi
  resolve_kafka
  local conf=$stack_dir/kafka/server.properties data=$stack_dir/kafka/data
  mkdir -p "$stack_dir/kafka" "$stack_dir/logs"
  sed -e "s#@KAFKA_PORT@#$kafka_port#g" -e "s#@CONTROLLER_PORT@#$controller_port#g" \
      -e "s#@DATA_DIR@#$data#g" -e "s#@PARTITIONS@#$partitions#g" \
      "$repo/deploy/kafka/server.properties.in" >"$conf"
  if [ -n "$ssl_port" ]; then
    make_tls
    sed -i -e "s#^listeners=\(.*\)#listeners=\1,SSL://127.0.0.1:$ssl_port#" \
           -e "s#^advertised.listeners=\(.*\)#advertised.listeners=\1,SSL://127.0.0.1:$ssl_port#" \
           -e "s#^listener.security.protocol.map=\(.*\)#listener.security.protocol.map=\1,SSL:SSL#" \
           "$conf"
    cat >>"$conf" <<PROPS
ssl.keystore.type=PKCS12
ssl.keystore.location=$stack_dir/tls/kafka.p12
ssl.keystore.password=tagstream-local
ssl.key.password=tagstream-local
PROPS
  fi
  local scram_args=()
  if [ -n "$sasl_port" ]; then
    # A second listener with SASL/SCRAM for clients; brokers and controller stay on PLAINTEXT.
    sed -i -e "s#^listeners=\(.*\)#listeners=\1,SASL_PLAINTEXT://127.0.0.1:$sasl_port#" \
           -e "s#^advertised.listeners=\(.*\)#advertised.listeners=\1,SASL_PLAINTEXT://127.0.0.1:$sasl_port#" \
           -e "s#^listener.security.protocol.map=\(.*\)#listener.security.protocol.map=\1,SASL_PLAINTEXT:SASL_PLAINTEXT#" \
           "$conf"
    cat >>"$conf" <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
PROPS
    scram_args=(--add-scram "SCRAM-SHA-256=[name=$scram_user,password=$scram_password]"
                --add-scram "SCRAM-SHA-512=[name=$scram_user,password=$scram_password]")
  fi
  local cp="$jars_dir/*"
  local java_opts=(-Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
                   "-Dlog4j2.configurationFile=$repo/deploy/kafka/log4j2.properties"
                   "-Dkafka.logs.dir=$stack_dir/logs")
  if [ ! -f "$data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$conf" \
      "${scram_args[@]}" \
      >"$stack_dir/logs/kafka-format.log" 2>&1 || { cat "$stack_dir/logs/kafka-format.log" >&2; die "kafka storage format failed"; }
  fi
  port_open "$kafka_port" && die "port $kafka_port is taken; set KAFKA_PORT"
  log "starting kafka $kafka_version on 127.0.0.1:$kafka_port (log: $stack_dir/logs/kafka.log)"
  : >"$stack_dir/logs/kafka.log"
  nohup java -cp "$cp" "${java_opts[@]}" kafka.Kafka "$conf" </dev/null >>"$stack_dir/logs/kafka.log" 2>&1 &
  echo $! >"$stack_dir/pids/kafka.pid"
  wait_for kafka "$stack_dir/logs/kafka.log" kafka_ready
  log "kafka ready"
}

redis_ready() { redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; }

start_redis() {
  if running redis; then log "redis already running on 127.0.0.1:$redis_port"; return 0; fi
  apt_install redis-server redis-server
  mkdir -p "$stack_dir/redis" "$stack_dir/logs"
  port_open "$redis_port" && die "port $redis_port is taken; set REDIS_PORT"
  log "starting redis on 127.0.0.1:$redis_port (log: $stack_dir/logs/redis.log)"
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$stack_dir/redis" \
    --save "" --appendonly no --daemonize no --logfile "$stack_dir/logs/redis.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$stack_dir/pids/redis.pid"
  wait_for redis "$stack_dir/logs/redis.log" redis_ready
  log "redis ready"
}

prometheus_ready() { port_open "$prometheus_port"; }

start_prometheus() {
  if running prometheus; then log "prometheus already running on 127.0.0.1:$prometheus_port"; return 0; fi
  apt_install prometheus prometheus
  mkdir -p "$stack_dir/prometheus" "$stack_dir/logs"
  sed -e "s#@METRICS_TARGET@#127.0.0.1:$metrics_port#g" -e "s#@ALERTS@#$repo/deploy/prometheus/alerts.yml#g" \
    "$repo/deploy/prometheus/prometheus.yml.in" \
    >"$stack_dir/prometheus/prometheus.yml"
  log "starting prometheus on 127.0.0.1:$prometheus_port, scraping 127.0.0.1:$metrics_port"
  prometheus --config.file="$stack_dir/prometheus/prometheus.yml" \
    --storage.tsdb.path="$stack_dir/prometheus/data" \
    --web.listen-address="127.0.0.1:$prometheus_port" </dev/null >"$stack_dir/logs/prometheus.log" 2>&1 &
  echo $! >"$stack_dir/pids/prometheus.pid"
  wait_for prometheus "$stack_dir/logs/prometheus.log" prometheus_ready
  log "prometheus ready"
}

stop_one() {
  local f=$stack_dir/pids/$1.pid
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $1 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
mkdir -p "$stack_dir/pids" "$cache_dir"
case "$cmd" in
  up)
    services=("$@"); [ ${#services[@]} -gt 0 ] || services=(kafka redis)
    for s in "${services[@]}"; do
      case "$s" in
        kafka) start_kafka ;; redis) start_redis ;; prometheus) start_prometheus ;;
        *) die "unknown service '$s' (kafka, redis, prometheus)" ;;
      esac
    done
    ;;
  down)
    for s in prometheus redis kafka; do stop_one "$s"; done
    if [ "${1:-}" = "--wipe" ]; then rm -rf "$stack_dir"; log "wiped $stack_dir"; fi
    ;;
  stop)
    [ $# -gt 0 ] || die "stop which service? (kafka, redis, prometheus)"
    for s in "$@"; do stop_one "$s"; done
    ;;
  status)
    for s in kafka redis prometheus; do
      if running "$s"; then echo "$s: running (pid $(cat "$stack_dir/pids/$s.pid")), log $stack_dir/logs/$s.log"
      else echo "$s: stopped"; fi
    done
    ;;
  resolve) resolve_kafka; log "kafka jars in $jars_dir" ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
esac
