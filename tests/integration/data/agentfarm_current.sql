-- AgentFarm's own schema (db2f8f27), as SQLite's sqlite_master holds it after
-- AgentFarm's Base.metadata.create_all: one 'type name' line, then its SQL. Read by
-- tests/integration/test_agentfarm_dropin.py.
index idx_agent_actions_action_type
CREATE INDEX idx_agent_actions_action_type ON agent_actions (action_type)
index idx_agent_actions_agent_id
CREATE INDEX idx_agent_actions_agent_id ON agent_actions (agent_id)
index idx_agent_actions_module_type
CREATE INDEX idx_agent_actions_module_type ON agent_actions (module_type)
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
index idx_resource_states_resource_id
CREATE INDEX idx_resource_states_resource_id ON resource_states (resource_id)
index idx_resource_states_step_number
CREATE INDEX idx_resource_states_step_number ON resource_states (step_number)
index idx_simulation_steps_simulation_id
CREATE INDEX idx_simulation_steps_simulation_id ON simulation_steps (simulation_id)
index idx_simulation_steps_step_number
CREATE INDEX idx_simulation_steps_step_number ON simulation_steps (step_number)
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
	reward FLOAT, 
	details VARCHAR(1024), 
	module_type VARCHAR(50), 
	module_id VARCHAR(64), 
	PRIMARY KEY (action_id), 
	FOREIGN KEY(simulation_id) REFERENCES simulations (simulation_id), 
	FOREIGN KEY(agent_id) REFERENCES agents (agent_id)
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
	starting_health FLOAT, 
	starvation_counter INTEGER, 
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
table resource_states
CREATE TABLE resource_states (
	id INTEGER NOT NULL, 
	simulation_id VARCHAR(64), 
	step_number INTEGER, 
	resource_id VARCHAR(64), 
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
	agent_type_counts JSON, 
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
