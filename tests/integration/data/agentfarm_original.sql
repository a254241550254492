-- AgentFarm's own schema (2e88b599), as SQLite's sqlite_master holds it after
-- AgentFarm's Base.metadata.create_all: one 'type name' line, then its SQL. Read by
-- tests/integration/test_agentfarm_dropin.py.
index idx_agent_actions_action_type
CREATE INDEX idx_agent_actions_action_type ON agent_actions (action_type)
index idx_agent_actions_agent_id
CREATE INDEX idx_agent_actions_agent_id ON agent_actions (agent_id)
index idx_agent_actions_step_number
CREATE INDEX idx_agent_actions_step_number ON agent_actions (step_number)
index idx_agent_states_agent_id
CREATE INDEX idx_agent_states_agent_id ON agent_states (agent_id)
index idx_agent_states_agent_step
CREATE INDEX idx_agent_states_agent_step ON agent_states (agent_id, step_number)
index idx_agent_states_step_number
CREATE INDEX idx_agent_states_step_number ON agent_states (step_number)
index idx_agents_agent_type
CREATE INDEX idx_agents_agent_type ON agents (agent_type)
index idx_agents_birth_time
CREATE INDEX idx_agents_birth_time ON agents (birth_time)
index idx_agents_death_time
CREATE INDEX idx_agents_death_time ON agents (death_time)
index idx_health_incidents_agent_id
CREATE INDEX idx_health_incidents_agent_id ON health_incidents (agent_id)
index idx_health_incidents_step_number
CREATE INDEX idx_health_incidents_step_number ON health_incidents (step_number)
index idx_learning_experiences_agent_id
CREATE INDEX idx_learning_experiences_agent_id ON learning_experiences (agent_id)
index idx_learning_experiences_module_type
CREATE INDEX idx_learning_experiences_module_type ON learning_experiences (module_type)
index idx_learning_experiences_step_number
CREATE INDEX idx_learning_experiences_step_number ON learning_experiences (step_number)
index idx_reproduction_events_parent_id
CREATE INDEX idx_reproduction_events_parent_id ON reproduction_events (parent_id)
index idx_reproduction_events_step_number
CREATE INDEX idx_reproduction_events_step_number ON reproduction_events (step_number)
index idx_reproduction_events_success
CREATE INDEX idx_reproduction_events_success ON reproduction_events (success)
index idx_resource_states_resource_id
CREATE INDEX idx_resource_states_resource_id ON resource_states (resource_id)
index idx_resource_states_step_number
CREATE INDEX idx_resource_states_step_number ON resource_states (step_number)
index idx_simulation_steps_simulation_id
CREATE INDEX idx_simulation_steps_simulation_id ON simulation_steps (simulation_id)
index idx_simulation_steps_step_number
CREATE INDEX idx_simulation_steps_step_number ON simulation_steps (step_number)
index idx_social_interactions_initiator_id
CREATE INDEX idx_social_interactions_initiator_id ON social_interactions (initiator_id)
index idx_social_interactions_interaction_type
CREATE INDEX idx_social_interactions_interaction_type ON social_interactions (interaction_type)
index idx_social_interactions_recipient_id
CREATE INDEX idx_social_interactions_recipient_id ON social_interactions (recipient_id)
index idx_social_interactions_step_number
CREATE INDEX idx_social_interactions_step_number ON social_interactions (step_number)
index sqlite_autoindex_agent_states_1
None
index sqlite_autoindex_agents_1
None
index sqlite_autoindex_experiments_1
None
index sqlite_autoindex_simulation_steps_1
None
index sqlite_autoindex_simulations_1
None
table agent_actions
CREATE TABLE agent_actions (
	action_id INTEGER NOT NULL, 
	simulation_id VARCHAR(64), 
	step_number INTEGER NOT NULL, 
	agent_id VARCHAR(64) NOT NULL, 
	action_type VARCHAR(20) NOT NULL, 
	action_target_id VARCHAR(64), 
	state_before_id VARCHAR(128), 
	state_after_id VARCHAR(128), 
	resources_before FLOAT, 
	resources_after FLOAT, 
	reward FLOAT, 
	details VARCHAR(1024), 
	PRIMARY KEY (action_id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id), 
	FOREIGN KEY(agent_id) REFERENCES agents (agent_id), 
	FOREIGN KEY(action_target_id) REFERENCES agents (agent_id), 
	FOREIGN KEY(state_before_id) REFERENCES agent_states (id), 
	FOREIGN KEY(state_after_id) REFERENCES agent_states (id)
)
table agent_states
CREATE TABLE agent_states (
	id VARCHAR(128) NOT NULL, 
	simulation_id VARCHAR(64), 
	step_number INTEGER, 
	agent_id VARCHAR(64), 
	position_x FLOAT, 
	position_y FLOAT, 
	position_z FLOAT, 
	resource_level FLOAT, 
	current_health FLOAT, 
	is_defending BOOLEAN, 
	total_reward FLOAT, 
	age INTEGER, 
	PRIMARY KEY (id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id), 
	FOREIGN KEY(agent_id) REFERENCES agents (agent_id)
)
table agents
CREATE TABLE agents (
	simulation_id VARCHAR(64), 
	agent_id VARCHAR(64) NOT NULL, 
	birth_time INTEGER, 
	death_time INTEGER, 
	agent_type VARCHAR(50), 
	position_x FLOAT, 
	position_y FLOAT, 
	initial_resources FLOAT, 
	starting_health FLOAT, 
	starvation_threshold INTEGER, 
	genome_id VARCHAR(64), 
	generation INTEGER, 
	action_weights JSON, 
	PRIMARY KEY (agent_id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id)
)
table experiments
CREATE TABLE experiments (
	experiment_id VARCHAR(64) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	description VARCHAR(4096), 
	hypothesis VARCHAR(2048), 
	creation_date DATETIME, 
	last_updated DATETIME, 
	status VARCHAR(50), 
	tags JSON, 
	variables JSON, 
	results_summary JSON, 
	notes VARCHAR(4096), 
	PRIMARY KEY (experiment_id)
)
table health_incidents
CREATE TABLE health_incidents (
	incident_id INTEGER NOT NULL, 
	simulation_id VARCHAR(64), 
	step_number INTEGER NOT NULL, 
	agent_id VARCHAR(64) NOT NULL, 
	health_before FLOAT, 
	health_after FLOAT, 
	cause VARCHAR(50) NOT NULL, 
	details VARCHAR(512), 
	PRIMARY KEY (incident_id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id), 
	FOREIGN KEY(agent_id) REFERENCES agents (agent_id)
)
table learning_experiences
CREATE TABLE learning_experiences (
	experience_id INTEGER NOT NULL, 
	simulation_id VARCHAR(64), 
	step_number INTEGER, 
	agent_id VARCHAR(64), 
	module_type VARCHAR(50), 
	module_id VARCHAR(64), 
	action_taken INTEGER, 
	action_taken_mapped VARCHAR(20), 
	reward FLOAT, 
	PRIMARY KEY (experience_id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id), 
	FOREIGN KEY(agent_id) REFERENCES agents (agent_id)
)
table reproduction_events
CREATE TABLE reproduction_events (
	event_id INTEGER NOT NULL, 
	simulation_id VARCHAR(64), 
	step_number INTEGER NOT NULL, 
	parent_id VARCHAR(64) NOT NULL, 
	offspring_id VARCHAR(64), 
	success BOOLEAN NOT NULL, 
	parent_resources_before FLOAT NOT NULL, 
	parent_resources_after FLOAT NOT NULL, 
	offspring_initial_resources FLOAT, 
	failure_reason VARCHAR(255), 
	parent_generation INTEGER NOT NULL, 
	offspring_generation INTEGER, 
	parent_position_x FLOAT NOT NULL, 
	parent_position_y FLOAT NOT NULL, 
	timestamp DATETIME NOT NULL, 
	PRIMARY KEY (event_id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id), 
	FOREIGN KEY(parent_id) REFERENCES agents (agent_id), 
	FOREIGN KEY(offspring_id) REFERENCES agents (agent_id)
)
table resource_states
CREATE TABLE resource_states (
	id INTEGER NOT NULL, 
	simulation_id VARCHAR(64), 
	step_number INTEGER, 
	resource_id INTEGER, 
	amount FLOAT, 
	position_x FLOAT, 
	position_y FLOAT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id)
)
table simulation_config
CREATE TABLE simulation_config (
	simulation_id VARCHAR(64), 
	config_id INTEGER NOT NULL, 
	timestamp INTEGER NOT NULL, 
	config_data VARCHAR(4096) NOT NULL, 
	PRIMARY KEY (config_id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id)
)
table simulation_steps
CREATE TABLE simulation_steps (
	step_number INTEGER NOT NULL, 
	simulation_id VARCHAR(64) NOT NULL, 
	total_agents INTEGER, 
	system_agents INTEGER, 
	independent_agents INTEGER, 
	control_agents INTEGER, 
	total_resources FLOAT, 
	average_agent_resources FLOAT, 
	births INTEGER, 
	deaths INTEGER, 
	current_max_generation INTEGER, 
	resource_efficiency FLOAT, 
	resource_distribution_entropy FLOAT, 
	average_agent_health FLOAT, 
	average_agent_age INTEGER, 
	average_reward FLOAT, 
	combat_encounters INTEGER, 
	successful_attacks INTEGER, 
	resources_shared FLOAT, 
	resources_shared_this_step FLOAT, 
	combat_encounters_this_step INTEGER, 
	successful_attacks_this_step INTEGER, 
	genetic_diversity FLOAT, 
	dominant_genome_ratio FLOAT, 
	resources_consumed FLOAT, 
	PRIMARY KEY (step_number, simulation_id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id)
)
table simulations
CREATE TABLE simulations (
	simulation_id VARCHAR(64) NOT NULL, 
	experiment_id VARCHAR(64), 
	start_time DATETIME, 
	end_time DATETIME, 
	status VARCHAR(50), 
	parameters JSON NOT NULL, 
	results_summary JSON, 
	simulation_db_path VARCHAR(255) NOT NULL, 
	PRIMARY KEY (simulation_id), 
	FOREIGN KEY(experiment_id) REFERENCES experiments (experiment_id)
)
table social_interactions
CREATE TABLE social_interactions (
	interaction_id INTEGER NOT NULL, 
	simulation_id VARCHAR(64), 
	step_number INTEGER NOT NULL, 
	initiator_id VARCHAR(64) NOT NULL, 
	recipient_id VARCHAR(64) NOT NULL, 
	interaction_type VARCHAR(50) NOT NULL, 
	subtype VARCHAR(50), 
	outcome VARCHAR(50) NOT NULL, 
	resources_transferred FLOAT, 
	distance FLOAT, 
	initiator_resources_before FLOAT, 
	initiator_resources_after FLOAT, 
	recipient_resources_before FLOAT, 
	recipient_resources_after FLOAT, 
	group_id VARCHAR(64), 
	details JSON, 
	timestamp DATETIME NOT NULL, 
	PRIMARY KEY (interaction_id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id), 
	FOREIGN KEY(initiator_id) REFERENCES agents (agent_id), 
	FOREIGN KEY(recipient_id) REFERENCES agents (agent_id)
)
