#include "iomt_mqtt.h"
#include <MQTTClient.h>
#include <stdlib.h>

typedef struct {
    MQTTClient client;
    iomt_mqtt_on_message on_message;
    iomt_mqtt_on_lost on_lost;
    void *context;
} iomt_client;

static int arrived(void *ctx, char *topic, int topic_len, MQTTClient_message *m) {
    (void)topic_len;
    iomt_client *c = ctx;
    int handled = c->on_message(c->context, topic, m->payload, m->payloadlen);
    if (handled) {
        MQTTClient_freeMessage(&m);
        MQTTClient_free(topic);
    }
    return handled;
}

static void lost(void *ctx, char *cause) {
    iomt_client *c = ctx;
    if (c->on_lost) c->on_lost(c->context, cause ? cause : "connection lost");
}

static int connect_and_subscribe(iomt_client *c, const char *topic, int clean_session) {
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    opts.keepAliveInterval = 20;
    opts.cleansession = clean_session;
    int rc = MQTTClient_connect(c->client, &opts);
    if (rc != MQTTCLIENT_SUCCESS) return rc;
    return MQTTClient_subscribe(c->client, topic, 1);
}

void *iomt_mqtt_start(const char *uri, const char *client_id, const char *topic, int clean_session,
                      iomt_mqtt_on_message on_message, iomt_mqtt_on_lost on_lost, void *context, int *rc) {
    iomt_client *c = calloc(1, sizeof(iomt_client));
    if (!c) { *rc = MQTTCLIENT_FAILURE; return NULL; }
    c->on_message = on_message;
    c->on_lost = on_lost;
    c->context = context;
    *rc = MQTTClient_create(&c->client, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (*rc != MQTTCLIENT_SUCCESS) { free(c); return NULL; }
    *rc = MQTTClient_setCallbacks(c->client, c, lost, arrived, NULL);
    if (*rc == MQTTCLIENT_SUCCESS) *rc = connect_and_subscribe(c, topic, clean_session);
    if (*rc != MQTTCLIENT_SUCCESS) { MQTTClient_destroy(&c->client); free(c); return NULL; }
    return c;
}

int iomt_mqtt_reconnect(void *client, const char *topic, int clean_session) {
    return connect_and_subscribe(client, topic, clean_session);
}

int iomt_mqtt_publish(void *client, const char *topic, const void *payload, int length, int qos, long timeout_ms) {
    iomt_client *c = client;
    MQTTClient_deliveryToken token;
    int rc = MQTTClient_publish(c->client, topic, length, payload, qos, 0, &token);
    if (rc != MQTTCLIENT_SUCCESS || qos == 0) return rc;
    return MQTTClient_waitForCompletion(c->client, token, timeout_ms);
}

void iomt_mqtt_stop(void *client) {
    iomt_client *c = client;
    MQTTClient_disconnect(c->client, 1000);
    MQTTClient_destroy(&c->client);
    free(c);
}

const char *iomt_mqtt_error(int rc) { return MQTTClient_strerror(rc); }
