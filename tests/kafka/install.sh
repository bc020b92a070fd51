#!/usr/bin/env bash
# install.sh [VERSION] — fetches Apache Kafka VERSION (default: the pinned 4.x) from Maven Central
# into $KAFKA_CACHE/VERSION/libs (default ~/.cache/streams-kafka) and prints that directory.
# Skipped when the directory is complete. Needs java (17+ for 4.x) and mvn.
#
# Pinned versions: 4.4.0, the newest 4.x that resolves and runs here, and 3.9.2, the last 3.x
# (compatibility tests). Brokers run from these jars with `java -cp 'LIBS/*' kafka.Kafka`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${1:-4.4.0}
cache=${KAFKA_CACHE:-$HOME/.cache/streams-kafka}
libs=$cache/$version/libs
if [[ -f $libs/.complete ]]; then echo "$libs"; exit 0; fi
for tool in java mvn; do
  command -v "$tool" >/dev/null || {
    echo "install.sh: '$tool' not found; on Debian: apt-get install -y openjdk-17-jdk-headless maven" >&2
    exit 1
  }
done
mkdir -p "$cache"
# Several test binaries may ask at once: one installs, the others wait.
exec 9>"$cache/.install-$version.lock"
flock 9
if [[ ! -f $libs/.complete ]]; then
  rm -rf "$libs"
  mvn -q -B -Dstyle.color=never -f "$here/pom.xml" -Dkafka.version="$version" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  ls "$libs"/kafka_2.13-"$version".jar >/dev/null
  touch "$libs/.complete"
fi
echo "$libs"
