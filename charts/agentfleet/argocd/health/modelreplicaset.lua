-- Argo CD health of an agentfleet.io ModelReplicaSet (resource.customizations.health.agentfleet.io_ModelReplicaSet).
-- Status is written by the agentfleet operator: observedGeneration, and conditions Ready,
-- Progressing, Degraded (operator/agentfleet/replica_rollout/summary.py compose_conditions). Lua 5.1 (gopher-lua).
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
local ready, progressing, degraded = conds["Ready"], conds["Progressing"], conds["Degraded"]
-- A replica failed or keeps restarting.
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = (degraded.reason or "Degraded") .. ": " .. (degraded.message or "")
  return hs
end
-- The spec cannot be acted on (invalid, model too large) or replicas cannot be placed: the
-- operator has stopped progressing and waiting will not help.
if progressing ~= nil and progressing.status == "False" and ready ~= nil and ready.status ~= "True" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
  return hs
end
if progressing ~= nil and progressing.status == "False" and (progressing.reason == "InvalidSpec" or progressing.reason == "ModelDoesNotFit") then
  hs.status = "Degraded"
  hs.message = progressing.reason .. ": " .. (progressing.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  if progressing ~= nil and progressing.status == "True" then
    -- Serving, but a rolling update or scale-up is under way.
    hs.message = (progressing.reason or "Progressing") .. ": " .. (progressing.message or "")
    return hs
  end
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if ready ~= nil then
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
end
return hs
