#!/bin/sh
# One node of the compose three-node cluster (docker-compose.cluster.yml): broker and controller
# in one process (combined KRaft mode, as deploy/local/kafka_cluster.py), SASL/SCRAM-SHA-512 for
# clients and replication, ACLs enforced. The broker and admin SCRAM users are written when the
# volume is first formatted; the services' users and ACLs are made by the `topics` job
# (python -m shared.kafka_admin setup-env). Passwords come from the environment, through
# Kafka's EnvVarConfigProvider, never from this file.
set -eu
: "${NODE_ID:?}" "${CLUSTER_ID:?}" "${HOMEWARD_KAFKA_BROKER_PASSWORD:?}" "${HOMEWARD_KAFKA_ADMIN_PASSWORD:?}"
CONFIG=/tmp/server.properties
SCRAM=org.apache.kafka.common.security.scram.ScramLoginModule
cat > "$CONFIG" <<PROPS
process.roles=broker,controller
node.id=${NODE_ID}
controller.quorum.voters=1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093
listeners=CLIENT://:9092,CONTROLLER://:9093,INTERNAL://:9094
advertised.listeners=CLIENT://${HOSTNAME_ADVERTISED}:9092,INTERNAL://${HOSTNAME_ADVERTISED}:9094
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,CLIENT:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
config.providers=env
config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
listener.name.client.scram-sha-512.sasl.jaas.config=${SCRAM} required;
listener.name.internal.scram-sha-512.sasl.jaas.config=${SCRAM} required username="homeward-broker" password="\${env:HOMEWARD_KAFKA_BROKER_PASSWORD}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:homeward-broker;User:homeward-admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
log.dirs=/var/lib/kafka/data
num.partitions=6
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
unclean.leader.election.enable=false
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
PROPS
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$CLUSTER_ID" -c "$CONFIG" \
  --add-scram "SCRAM-SHA-512=[name=homeward-broker,password=${HOMEWARD_KAFKA_BROKER_PASSWORD}]" \
  --add-scram "SCRAM-SHA-512=[name=homeward-admin,password=${HOMEWARD_KAFKA_ADMIN_PASSWORD}]"
exec /opt/kafka/bin/kafka-server-start.sh "$CONFIG"
