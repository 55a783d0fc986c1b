"""The cache's changes that must be atomic in Redis, as Lua scripts run by ``EVALSHA`` (loaded again by the
client after a restart or a ``SCRIPT FLUSH``).

Keys: ``{prefix}:gen:{key}`` (the entry's generation), ``{prefix}:tools:{key}`` (its catalogue),
``{prefix}:ws:{workspace}`` (the keys a workspace has, as members), ``{prefix}:lease:{key}`` (who lists it).
A key is a JSON array (workspace, agent, server); the scripts that walk a workspace name the keys they touch
from its members, so the cache runs on one Redis (or a primary with replicas), not on Redis Cluster.
"""

from __future__ import annotations

from typing import Final

# The entry's generation, made (ARGV[1], fresh) if it has none; the key joins its workspace's members.
# KEYS: gen, workspace. ARGV: fresh generation, ttl ms, member.
GENERATION: Final = """
local generation = redis.call('GET', KEYS[1])
if not generation then
  generation = ARGV[1]
  redis.call('SET', KEYS[1], generation, 'PX', ARGV[2])
end
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return generation
"""

# Store a catalogue only under the generation its listing began with: 1 if stored, 0 if overtaken.
# KEYS: gen, tools, workspace. ARGV: generation, catalogue, ttl ms, member.
PUT: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
"""

# Drop an entry with its generation, so a listing in flight cannot write it back, and say so.
# KEYS: gen, tools. ARGV: channel, message.
INVALIDATE: Final = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""

# Drop the workspace's entries (of every agent but ARGV[3]; ARGV[4] = '1' for all of them), and say so.
# KEYS: workspace. ARGV: key prefix, channel, message, agent kept, '1' to drop every agent's.
DROP_WORKSPACE: Final = """
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local ok, parts = pcall(cjson.decode, member)
  if not ok or ARGV[5] == '1' or parts[2] ~= ARGV[4] then
    redis.call('DEL', ARGV[1] .. ':gen:' .. member, ARGV[1] .. ':tools:' .. member)
    redis.call('SREM', KEYS[1], member)
  end
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""

# Renew the lease only while it is still ours (it may have expired and been taken over).
# KEYS: lease. ARGV: token, ttl ms.
RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Give the lease up if it is still ours, and tell the waiting replicas how the listing went.
# KEYS: lease. ARGV: token, channel, message.
RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
