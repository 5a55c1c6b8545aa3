-- Argo CD health of an agentfleet.io VectorIndex (resource.customizations.health.agentfleet.io_VectorIndex).
-- Status is written by the agentfleet operator (operator/agentfleet/controllers/vectorindex.py):
-- observedGeneration, phase, and conditions Ready, Progressing, Degraded, Ingested, MilvusReady.
-- Lua 5.1 (gopher-lua).
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
-- Failures that need a change (spec, source documents, Milvus Operator install), not time.
local stuck = {InvalidSpec = true, ImmutableFieldConflict = true, IngestionFailed = true, MilvusOperatorMissing = true}
if st.phase == "Failed" or (ready ~= nil and ready.status ~= "True" and stuck[ready.reason or ""]) then
  hs.status = "Degraded"
  if ready ~= nil then
    hs.message = (ready.reason or "Failed") .. ": " .. (ready.message or "")
  else
    hs.message = "phase Failed"
  end
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if ready ~= nil then
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
elseif st.phase ~= nil then
  hs.message = "phase " .. st.phase
end
return hs
