#pragma once
// The one header through which obmen includes Boost.Asio and Beast.
// Boost 1.74's <boost/asio/awaitable.hpp> fails with GCC 12 unless <utility> comes first,
// so every file that needs Asio includes this header instead of Asio directly.
#include <utility>

// Boost 1.74 turns co_await on for clang only with the Coroutines TS (<experimental/coroutine>);
// clang 14 in C++20 mode has standard coroutines, which Asio then uses (the fuzz build is clang).
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
#define BOOST_ASIO_HAS_CO_AWAIT 1
#endif

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace net = boost::asio;
