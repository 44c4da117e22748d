//! The pure core of qortex: everything that can be computed without a PostgreSQL server.
