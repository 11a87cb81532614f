// A small C shim over the Eclipse Paho C client (Debian's libpaho-mqtt-dev): Paho's option
// structs are set up with C initializer macros, which Swift cannot import.
#ifndef IOMT_MQTT_H
#define IOMT_MQTT_H

/// Called on Paho's thread for each message; return 1 once it is handled (Paho then acknowledges
/// it to the broker: PUBACK for QoS 1), 0 to have it delivered again.
typedef int (*iomt_mqtt_on_message)(void *context, const char *topic, const void *payload, int length);
/// Called on Paho's thread when the connection is lost.
typedef void (*iomt_mqtt_on_lost)(void *context, const char *cause);

/// Creates a client, connects (MQTT 3.1.1, a persistent session unless clean_session) and
/// subscribes to `topic` at QoS 1. Returns NULL and sets *rc on failure.
void *iomt_mqtt_start(const char *uri, const char *client_id, const char *topic, int clean_session,
                      iomt_mqtt_on_message on_message, iomt_mqtt_on_lost on_lost, void *context, int *rc);
/// Reconnects a client whose connection was lost and subscribes again.
int iomt_mqtt_reconnect(void *client, const char *topic, int clean_session);
/// Publishes and waits for the broker's acknowledgement (QoS 1) up to timeout_ms.
int iomt_mqtt_publish(void *client, const char *topic, const void *payload, int length, int qos, long timeout_ms);
void iomt_mqtt_stop(void *client);
const char *iomt_mqtt_error(int rc);

#endif
