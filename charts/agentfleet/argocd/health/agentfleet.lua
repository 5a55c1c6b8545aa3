-- Argo CD health of an agentfleet.io AgentFleet (resource.customizations.health.agentfleet.io_AgentFleet).
-- Status is written by the agentfleet operator (operator/agentfleet/controllers/agentfleet/status.py):
-- observedGeneration and conditions Ready, ModelReady, IndexReady, RedisReady, RuntimeReady (plus
-- the autoscaler's). Ready False with a WaitingFor* reason is progress; any other reason is a
-- problem in the spec or a missing reference (InvalidSpec, ModelNotFound, ...). Lua 5.1 (gopher-lua).
local hs = {status = "Progressing", message = "Waiting for the agentfleet operator"}
local meta = obj.metadata or {}
local st = obj.status
if st == nil then
  return hs
end
local gen = meta.generation
if gen ~= nil and (st.observedGeneration == nil or st.observedGeneration < gen) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(gen)
  return hs
end
local conds = {}
if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    if c.type ~= nil then
      conds[c.type] = c
    end
  end
end
local ready, degraded = conds["Ready"], conds["Degraded"]
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = (degraded.reason or "Degraded") .. ": " .. (degraded.message or "")
  return hs
end
if ready == nil then
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
local reason = ready.reason or ""
hs.message = reason .. ": " .. (ready.message or "")
if ready.status == "False" and reason ~= "" and string.sub(reason, 1, 10) ~= "WaitingFor" then
  hs.status = "Degraded"
end
return hs
