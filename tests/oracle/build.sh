#!/usr/bin/env bash
# build.sh — fetches Kafka Streams (the pinned 4.x) and its TopologyTestDriver from Maven Central
# into $ORACLE_CACHE/<version>/libs (default ~/.cache/streams-oracle), compiles src/*.java (the
# oracle and the takeover tests' Java application) into a directory named after the sources' hash,
# and prints the classpath to run them with:
#   java -cp "$(tests/oracle/build.sh)" Oracle CASE_DIR...
# Skipped when both are there. Needs java 17+ (javac) and mvn.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=4.4.0
cache=${ORACLE_CACHE:-$HOME/.cache/streams-oracle}
libs=$cache/$version/libs
for tool in javac mvn sha256sum; do
  command -v "$tool" >/dev/null || {
    echo "build.sh: '$tool' not found; on Debian: apt-get install -y openjdk-17-jdk-headless maven" >&2
    exit 1
  }
done
mkdir -p "$cache"
# Several test binaries may ask at once: one builds, the others wait.
exec 9>"$cache/.build.lock"
flock 9
if [[ ! -f $libs/.complete ]]; then
  rm -rf "$libs"
  mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  ls "$libs"/kafka-streams-"$version".jar >/dev/null
  touch "$libs/.complete"
fi
hash=$(cat "$here"/src/*.java | sha256sum | cut -c1-16)
classes=$cache/classes-$hash
if [[ ! -f $classes/.complete ]]; then
  rm -rf "$classes"
  mkdir -p "$classes"
  javac -nowarn -d "$classes" -cp "$libs/*" "$here"/src/*.java >&2
  touch "$classes/.complete"
fi
echo "$classes:$libs/*"
