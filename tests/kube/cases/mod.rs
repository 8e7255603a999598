mod chart;
mod crds;
mod nodes;
mod on_demand;
mod operator;
