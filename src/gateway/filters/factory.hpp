// Internal: the one place where a session's filter chains are put together,
// in their order (docs/design.md draws the same):
//
//   request:  route -> audit -> integrity -> schema -> behaviour -> policy -> ask -> upstream
//   list:     integrity -> namespacing -> schema -> visibility -> signing
#pragma once

#include <memory>
#include <string>

#include "../chain.hpp"
#include "../shared.hpp"
#include "ask.hpp"
#include "forward.hpp"
#include "integrity.hpp"
#include "namespacing.hpp"
#include "param_headers.hpp"
#include "pqmcp/policy/schema.hpp"
#include "route.hpp"

namespace pqmcp::gateway {

// What a session gives its filters.
struct SessionParts {
    SharedState& shared;
    const policy::Caller& caller;
    const std::string& session_id;
    const std::string& log_id;
    const Upstreams& upstreams;
    const Router& router;
    Lister& lister;
    Asker& asker;
    Forwarder& forwarder;
    ChainSink& sink;
    ResourceRoutes& routes;
    cluster::AsyncCounts* counts = nullptr;  // the thread's Redis client (cluster.redis)
    // The same client when behaviour baselines are shared there
    // (cluster.behaviour: shared); null: each replica keeps its own.
    cluster::AsyncCounts* baselines = nullptr;
};

// A session's chains and the state their filters share.
struct SessionChains {
    IntegrityState integrity;
    policy::SchemaCache schemas;
    ParamHeaderBook param_headers;
    std::unique_ptr<RequestChain> requests;
    std::unique_ptr<ListChain> lists;
};

[[nodiscard]] std::unique_ptr<SessionChains> make_chains(const SessionParts& parts);

}  // namespace pqmcp::gateway
