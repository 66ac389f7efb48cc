package io.confluent.kafka.schemaregistry.client.rest.exceptions;

/** Stand-in for Confluent's exception class (not on Maven Central); see SchemaRegistryClient. */
public class RestClientException extends Exception {
    public RestClientException(String message) {
        super(message);
    }
}
