/** The embeddable pub/sub broker, its client, and the wire protocol they share. */
export { Broker, createBroker, type AccessReloadResult, type BrokerRelay, type BrokerOptions, type BrokerEvents, type BrokerStats, type ClientInfo, type PublishEvent, type TopicSnapshot } from './broker.js';
export { BrokerClient, Subscription, connect, type ConnectOptions, type BrokerMessage, type ClientEvents } from './client.js';
export { TopicTree, type TopicNode } from './topic-tree.js';
export * from './protocol.js';
export { measureValue, MAX_INTEGER_DIGITS, MAX_VALUE_DEPTH, type ValueBudget } from './value-budget.js';
export { SessionEngine, type SessionOptions, type SessionStats, type Link, type LastValue } from './sessions.js';
export { memoryStore, openLmdbStore, type BrokerStore, type StoredRetained, type StoredSession, type StoredMessage, type StoredSessionMeta } from './persistence.js';
export * from './reliable-protocol.js';
export { ReliableClient, AckedSubscription, connectReliable, type ReliableConnectOptions, type AckedMessage, type ReliableClientEvents } from './reliable-client.js';
export { LineLimiter } from './line-limiter.js';
export { attachWebSocket, type WebSocketOptions, type WebSocketTransport } from './ws-transport.js';
export { joinRedisCluster, type RedisClusterOptions, type RedisCluster } from './cluster-redis.js';
