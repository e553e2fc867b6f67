// Boost.URL compiled into the libFuzzer build of fuzz_http_util (the project
// compiles it once, in src/transport/beast_impl.cpp, which clang 14 cannot
// build under the sanitizers because of its coroutines).
#include <boost/url/src.hpp>
