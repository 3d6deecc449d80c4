# Seccomp: the sandbox policy is data (src/engine/seccomp_policy.txt), compiled to a BPF program at
# build time, so the engine links a constant array and needs no libseccomp at runtime.
#   airlock_seccomp_policy   parser + libseccomp compiler (the build tool and tests use it)
#   airlock_seccomp_compile  the build-time tool
#   airlock_seccomp_program  the generated program: airlock::seccomp::sandbox_program()

add_library(airlock_seccomp_policy STATIC ${CMAKE_SOURCE_DIR}/src/engine/seccomp/policy.cc)
target_include_directories(airlock_seccomp_policy PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(airlock_seccomp_policy PUBLIC airlock_common PkgConfig::SECCOMP)

add_executable(airlock_seccomp_compile ${CMAKE_SOURCE_DIR}/tools/seccomp_compile.cc)
target_link_libraries(airlock_seccomp_compile PRIVATE airlock_seccomp_policy)

set(AIRLOCK_SECCOMP_POLICY ${CMAKE_SOURCE_DIR}/src/engine/seccomp_policy.txt)
set(AIRLOCK_SECCOMP_GENERATED_DIR ${CMAKE_BINARY_DIR}/generated)
set(AIRLOCK_SECCOMP_PROGRAM ${AIRLOCK_SECCOMP_GENERATED_DIR}/seccomp_program.cc)
set(AIRLOCK_SECCOMP_PFC ${AIRLOCK_SECCOMP_GENERATED_DIR}/seccomp_program.pfc)  # for review only

add_custom_command(
  OUTPUT ${AIRLOCK_SECCOMP_PROGRAM} ${AIRLOCK_SECCOMP_PFC}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${AIRLOCK_SECCOMP_GENERATED_DIR}
  COMMAND airlock_seccomp_compile --policy ${AIRLOCK_SECCOMP_POLICY}
          --output ${AIRLOCK_SECCOMP_PROGRAM} --pfc ${AIRLOCK_SECCOMP_PFC}
  DEPENDS airlock_seccomp_compile ${AIRLOCK_SECCOMP_POLICY}
  COMMENT "Compiling seccomp policy to BPF"
  VERBATIM)

add_library(airlock_seccomp_program STATIC ${AIRLOCK_SECCOMP_PROGRAM})
target_include_directories(airlock_seccomp_program PUBLIC ${CMAKE_SOURCE_DIR}/src)
