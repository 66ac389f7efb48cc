package io.confluent.kafka.schemaregistry.client;

import io.confluent.kafka.schemaregistry.client.rest.exceptions.RestClientException;

/**
 * Stand-in for Confluent's interface (not on Maven Central). VoltDB 10.1.1 links against it from
 * org.voltdb.serdes.AvroSerde, which the server builds at start even when no Avro topic is used;
 * these are the only methods it references.
 */
public interface SchemaRegistryClient {
    java.util.List<Integer> deleteSubject(String subject) throws java.io.IOException, RestClientException;

    org.apache.avro.Schema getById(int id) throws java.io.IOException, RestClientException;

    int register(String subject, org.apache.avro.Schema schema) throws java.io.IOException, RestClientException;

    void reset();
}
