//! Property tests of the planner through the simulation.
