"""The specification's own code, verbatim from agent_action_redis_schema.md.

Sections 3.5, 4.1, 4.2, 4.3 and 5.1, unchanged but for ``ACTION_STM_TTL``,
which the document never defines (agentmem's default short-term TTL is used).
The compatibility tests run these functions against data agentmem wrote (and
agentmem against data they wrote); the benchmark uses them as the naive
reference. They expect a ``decode_responses=True`` client, as the document does.
"""
# ruff: noqa: E722, E501, W291, W293, UP, B904, N802
# mypy: ignore-errors

import json
import time

ACTION_STM_TTL = 24 * 3600


def update_action_relative_index(redis_client, agent_id, action_id, step_number, max_size=20):
    """Update the relative time index with a new action."""
    # Add the action to the relative index
    redis_client.zadd(f"agent:{agent_id}:action:relative_index", {action_id: step_number})
    
    # Trim the index to maintain only the most recent actions
    redis_client.zremrangebyrank(f"agent:{agent_id}:action:relative_index", 0, -max_size-1)

def get_action_by_relative_position(redis_client, agent_id, relative_position):
    """Get an action by its relative position (0 = current, -1 = previous, etc.)."""
    # Convert relative position to rank
    rank = -1 - relative_position if relative_position <= 0 else relative_position
    
    # Get the action ID at the specified rank
    action_ids = redis_client.zrange(
        f"agent:{agent_id}:action:relative_index", 
        rank, 
        rank
    )
    
    if not action_ids:
        return None
    
    action_id = action_ids[0]
    
    # Retrieve the action data
    action_data = redis_client.hgetall(f"agent:{agent_id}:action:{action_id}")
    return convert_hash_to_action(action_data) if action_data else None


def store_agent_action(
    redis_client, 
    agent_id, 
    simulation_id, 
    step_number, 
    action_type, 
    action_target_id=None, 
    state_before_id=None,
    state_after_id=None,
    resources_before=None,
    resources_after=None,
    reward=None,
    details=None,
    position=None
):
    """Store an agent action in Redis."""
    # Generate unique action ID
    action_id = f"{agent_id}-{step_number}-{action_type}"
    
    # Convert action to hash fields
    action_hash = {
        "action_id": action_id,
        "simulation_id": simulation_id,
        "step_number": step_number,
        "agent_id": agent_id,
        "action_type": action_type,
        "stored_at": int(time.time())
    }
    
    # Add optional fields
    if action_target_id:
        action_hash["action_target_id"] = action_target_id
    if state_before_id:
        action_hash["state_before_id"] = state_before_id
    if state_after_id:
        action_hash["state_after_id"] = state_after_id
    if resources_before is not None:
        action_hash["resources_before"] = resources_before
    if resources_after is not None:
        action_hash["resources_after"] = resources_after
    if reward is not None:
        action_hash["reward"] = reward
    if details:
        action_hash["details"] = json.dumps(details)
    if position:
        action_hash["position_x"] = position[0]
        action_hash["position_y"] = position[1]
    
    # Generate action embedding if needed for similarity search
    if hasattr(action_type, "to_embedding"):
        embedding = action_type.to_embedding().tobytes()
        action_hash["embedding"] = embedding
    
    # Store action hash
    redis_client.hset(f"agent:{agent_id}:action:{action_id}", mapping=action_hash)
    
    # Add to timeline index
    redis_client.zadd(f"agent:{agent_id}:action:timeline", {action_id: step_number})
    
    # Add to relative time index
    update_action_relative_index(redis_client, agent_id, action_id, step_number)
    
    # Add to action type index
    redis_client.sadd(f"agent:{agent_id}:action:types:{action_type}", action_id)
    
    # Add to target index if target exists
    if action_target_id:
        redis_client.sadd(f"agent:{agent_id}:action:targets:{action_target_id}", action_id)
    
    # Add to reward index if reward exists
    if reward is not None:
        redis_client.zadd(f"agent:{agent_id}:action:rewards", {action_id: reward})
    
    # Add to simulation indices
    redis_client.rpush(f"simulation:{simulation_id}:actions", action_id)
    redis_client.sadd(f"simulation:{simulation_id}:actions:{step_number}", action_id)
    redis_client.zadd(f"simulation:{simulation_id}:actions:steps", {step_number: step_number})
    redis_client.hincrby(f"simulation:{simulation_id}:actions:by_type", action_type, 1)
    
    # Set TTL for action in STM
    redis_client.expire(f"agent:{agent_id}:action:{action_id}", ACTION_STM_TTL)
    
    return action_id


def get_agent_actions_by_type(redis_client, agent_id, action_type, limit=None):
    """Retrieve agent actions of a specific type."""
    # Get action IDs of the specified type
    action_ids = redis_client.smembers(f"agent:{agent_id}:action:types:{action_type}")
    
    # Sort by step number if needed
    if limit:
        # Get step numbers for each action
        actions_with_steps = []
        for action_id in action_ids:
            step = redis_client.hget(f"agent:{agent_id}:action:{action_id}", "step_number")
            if step:
                actions_with_steps.append((action_id, int(step)))
        
        # Sort by step number (most recent first) and limit
        actions_with_steps.sort(key=lambda x: x[1], reverse=True)
        action_ids = [a[0] for a in actions_with_steps[:limit]]
    
    # Retrieve each action
    actions = []
    for action_id in action_ids:
        action_hash = redis_client.hgetall(f"agent:{agent_id}:action:{action_id}")
        if action_hash:
            actions.append(convert_hash_to_action(action_hash))
    
    return actions


def get_agent_high_reward_actions(redis_client, agent_id, min_reward=0.5, limit=10):
    """Retrieve agent actions with rewards above the specified threshold."""
    # Get action IDs with rewards above threshold
    action_ids = redis_client.zrangebyscore(
        f"agent:{agent_id}:action:rewards",
        min_reward,
        float('inf'),
        start=0,
        num=limit
    )
    
    # Retrieve each action
    actions = []
    for action_id in action_ids:
        action_hash = redis_client.hgetall(f"agent:{agent_id}:action:{action_id}")
        if action_hash:
            actions.append(convert_hash_to_action(action_hash))
    
    return actions


def convert_hash_to_action(action_hash):
    """Convert Redis hash to Action object."""
    # Parse details JSON if present
    details = None
    if "details" in action_hash:
        try:
            details = json.loads(action_hash["details"])
        except:
            details = action_hash["details"]
    
    # Create action object (can be a simple dict or custom class)
    action = {
        "action_id": action_hash["action_id"],
        "simulation_id": action_hash["simulation_id"],
        "step_number": int(action_hash["step_number"]),
        "agent_id": action_hash["agent_id"],
        "action_type": action_hash["action_type"],
        "action_target_id": action_hash.get("action_target_id"),
        "state_before_id": action_hash.get("state_before_id"),
        "state_after_id": action_hash.get("state_after_id"),
        "resources_before": float(action_hash["resources_before"]) if "resources_before" in action_hash else None,
        "resources_after": float(action_hash["resources_after"]) if "resources_after" in action_hash else None,
        "reward": float(action_hash["reward"]) if "reward" in action_hash else None,
        "details": details
    }
    
    # Add position if available
    if "position_x" in action_hash and "position_y" in action_hash:
        action["position"] = (float(action_hash["position_x"]), float(action_hash["position_y"]))
    
    return action
