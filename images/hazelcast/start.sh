#!/bin/sh
# JAVA_OPTS word-split on purpose: it holds several -D options, as in hazelcast/hazelcast.
# shellcheck disable=SC2086
exec java ${JAVA_HEAP_OPTS:--Xmx256m} -Djava.awt.headless=true ${JAVA_OPTS:-} \
  -cp '/opt/hazelcast/lib/*' com.hazelcast.core.server.HazelcastMemberStarter
