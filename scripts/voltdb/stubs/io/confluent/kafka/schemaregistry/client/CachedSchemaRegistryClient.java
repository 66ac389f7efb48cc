package io.confluent.kafka.schemaregistry.client;

/** Stand-in that refuses to be used: CellCelly runs VoltDB without Avro topics or a schema registry. */
public class CachedSchemaRegistryClient implements SchemaRegistryClient {
    public CachedSchemaRegistryClient(java.util.List<String> urls, int capacity, java.util.Map<String, ?> config) {
        throw new UnsupportedOperationException("no schema registry in this VoltDB build (CellCelly stub)");
    }

    public java.util.List<Integer> deleteSubject(String subject) {
        throw new UnsupportedOperationException();
    }

    public org.apache.avro.Schema getById(int id) {
        throw new UnsupportedOperationException();
    }

    public int register(String subject, org.apache.avro.Schema schema) {
        throw new UnsupportedOperationException();
    }

    public void reset() {
    }
}
