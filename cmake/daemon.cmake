# airlockd: the daemon (issue 3). Included from the top-level CMakeLists.txt.
#   airlock_daemon  everything but main(): HTTP server, router, errors, auth, stores, routes
#   airlockd        the executable
# Unit tests link airlock_daemon so they can test its pieces without a running daemon.

find_package(Boost 1.74 REQUIRED)          # Beast + Asio, header-only
find_package(SQLite3 REQUIRED)
find_package(OpenSSL REQUIRED COMPONENTS Crypto SSL)  # SSL: airlockd's optional HTTPS listener
find_package(Threads REQUIRED)

file(GLOB AIRLOCK_DAEMON_SRC CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/src/daemon/*.cc ${CMAKE_SOURCE_DIR}/src/daemon/routes/*.cc)
list(REMOVE_ITEM AIRLOCK_DAEMON_SRC ${CMAKE_SOURCE_DIR}/src/daemon/main.cc)

add_library(airlock_daemon STATIC ${AIRLOCK_DAEMON_SRC})
target_include_directories(airlock_daemon PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(airlock_daemon PUBLIC
  airlock_engine airlock_network airlock_common Boost::headers SQLite::SQLite3 OpenSSL::SSL OpenSSL::Crypto nlohmann_json::nlohmann_json
  CLI11::CLI11 Threads::Threads)
# Asio without its deprecated interfaces; Beast's own error checks stay on.
target_compile_definitions(airlock_daemon PUBLIC BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW)

add_executable(airlockd ${CMAKE_SOURCE_DIR}/src/daemon/main.cc)
target_link_libraries(airlockd PRIVATE airlock_daemon)

if(TARGET unit_tests)
  target_link_libraries(unit_tests PRIVATE airlock_daemon)
endif()
